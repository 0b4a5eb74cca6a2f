import { cli, serviceJson, startService, type Service } from './cli-harness';

/** Usage reports (table, CSV, JSON, chart), the audit log with paging, plans, subscriptions, activations. */
let s: Service;
let env: Record<string, string>;
beforeAll(async () => {
  s = await startService();
  env = { BILLING_API_URL: s.url, ADMIN_API_TOKEN: s.t.adminToken };
});
afterAll(() => s.close());

const email = () => `cli-${Math.random().toString(16).slice(2, 10)}@example.com`;
const DAY = 86_400_000;
const day = (offset: number) => new Date(Date.now() + offset * DAY).toISOString().slice(0, 10);

async function createCustomer(): Promise<{ id: string; key: string }> {
  const r = await cli(['customers', 'create', '--email', email(), '--company', 'Acme', '--json'], { env });
  const body = JSON.parse(r.stdout) as { customer: { id: string }; api_key: string };
  return { id: body.customer.id, key: body.api_key };
}

describe('usage report', () => {
  let c: { id: string; key: string };
  const period = ['--from', day(-6), '--to', day(1)];
  beforeAll(async () => {
    c = await createCustomer();
    // A rising trend over four days: 10, 40, 20, 80.
    const events = [10, 40, 20, 80].map((quantity, i) => ({
      metric: 'api_calls',
      quantity,
      occurred_at: new Date(Date.parse(`${day(i - 4)}T12:00:00Z`)).toISOString(),
      idempotency_key: `cli-${c.id}-${i}`,
    }));
    const res = await fetch(`${s.url}/api/usage`, {
      method: 'POST',
      headers: { 'x-api-key': c.key, 'content-type': 'application/json' },
      body: JSON.stringify({ events }),
    });
    expect(res.status).toBe(201);
  });

  test('when --csv is asked, then stdout is the service’s CSV unchanged', async () => {
    const r = await cli(['usage', 'report', '--customer', c.id, ...period, '--csv'], { env });
    expect(r.code).toBe(0);
    const res = await fetch(`${s.url}/api/reports/usage?customer_id=${c.id}&from=${day(-6)}&to=${day(1)}&format=csv`, {
      headers: { authorization: `Bearer ${s.t.adminToken}` },
    });
    expect(r.stdout).toBe(await res.text());
    expect(r.stdout).toBe(`customer_id,metric,quantity,events\n${c.id},api_calls,150,4\n`);
  });

  test('when --json is asked, then stdout is the service’s JSON; without it, a table', async () => {
    const json = await cli(['usage', 'report', '--customer', c.id, ...period, '--by', 'day', '--json'], { env });
    expect(JSON.parse(json.stdout)).toEqual(await serviceJson(s, `/api/reports/usage?customer_id=${c.id}&from=${day(-6)}&to=${day(1)}&group_by=day`));
    const table = await cli(['usage', 'report', '--customer', c.id, ...period, '--by', 'day'], { env });
    expect(table.stdout.split('\n')[0]).toMatch(/^DAY +METRIC +QUANTITY +EVENTS$/);
    expect(table.stdout).toContain(`${day(-1)}  api_calls        80       1`);
  });

  test('when --chart is asked, then daily usage is drawn: rows on a labelled axis, the first and last days under it', async () => {
    const r = await cli(['usage', 'report', '--customer', c.id, ...period, '--chart'], { env });
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe(`api_calls per day, ${day(-6)} to ${day(0)}: total 150, peak 80 on ${day(-1)}`);
    const plotted = lines.filter((l) => /^ +[\d,.]+ [┤┼]/.test(l));
    expect(plotted.length).toBeGreaterThanOrEqual(8);
    expect(plotted[0]).toMatch(/^ +80 [┤┼]/);
    expect(plotted[plotted.length - 1]).toMatch(/^ +0 [┤┼]/);
    // Something is drawn beyond the axis: the line of the series.
    expect(plotted.filter((l) => /[╭╮╯╰│─]/.test(l.slice(l.search(/[┤┼]/) + 1))).length).toBeGreaterThan(3);
    const dates = lines.filter(Boolean).at(-1)!;
    expect(dates.trim()).toMatch(new RegExp(`^${day(-6)} +${day(0)}$`));
    // No colour codes when stdout is not a terminal.
    expect(r.stdout).not.toContain('\x1b[');
  });

  test('when a customer’s own totals are shown, then they are per metric', async () => {
    const r = await cli(['usage', 'show', c.id, ...period], { env });
    expect(r.stdout).toMatch(/^METRIC +QUANTITY +EVENTS\napi_calls +150 +4\n$/);
  });
});

describe('audit', () => {
  let c: { id: string; key: string };
  beforeAll(async () => {
    c = await createCustomer();
    await cli(['customers', 'update', c.id, '--company', 'Acme 2'], { env });
    await cli(['customers', 'update', c.id, '--company', 'Acme 3'], { env });
  });

  test('when --all pages one row at a time and stderr is not a terminal, then every row is printed in one table and no progress is drawn', async () => {
    const r = await cli(['audit', '--customer', c.id, '--limit', '1', '--all'], { env, stderrIsTTY: false });
    expect(r.code).toBe(0);
    const rows = r.stdout.trim().split('\n');
    expect(rows[0]).toMatch(/^AT +ACTOR +ACTION +OUTCOME +TARGET/);
    expect(rows.slice(1).map((l) => l.split(/ +/)[2])).toEqual(['customer.update', 'customer.update', 'api_key.issue', 'customer.create']);
    expect(r.stderr).toBe('');
  });

  test('when stderr is a terminal, then a progress line counts the rows and is cleared at the end', async () => {
    const r = await cli(['audit', '--customer', c.id, '--limit', '1', '--all'], { env, stderrIsTTY: true });
    expect(r.stderr).toContain('\r\x1b[Kaudit: 4 rows, 4 pages…');
    expect(r.stderr.endsWith('\r\x1b[K')).toBe(true);
  });

  test('when one page is read, then the next cursor is offered; with --json --all each page is one line of the service’s JSON', async () => {
    const one = await cli(['audit', '--customer', c.id, '--limit', '2'], { env });
    expect(one.stdout.trim().split('\n')).toHaveLength(3);
    const cursor = /more: --cursor (\S+)/.exec(one.stderr)![1]!;
    const next = await cli(['audit', '--customer', c.id, '--limit', '2', '--cursor', cursor, '--json'], { env });
    expect(JSON.parse(next.stdout)).toEqual(await serviceJson(s, `/api/audit?customer_id=${c.id}&limit=2&cursor=${cursor}`));
    const all = await cli(['audit', '--customer', c.id, '--limit', '2', '--all', '--json'], { env });
    const pages = all.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { data: unknown[]; next_cursor: string | null });
    expect(pages.map((p) => p.data.length)).toEqual([2, 2]);
    expect(pages[1]!.next_cursor).toBeNull();
  });

  test('when a filter is refused by the service, then it exits 2 with the field', async () => {
    const r = await cli(['audit', '--customer', 'not-a-uuid'], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/- customer_id: /);
  });
});

describe('plans and subscriptions', () => {
  const code = `cli-${Math.random().toString(16).slice(2, 8)}`;

  test('when a plan is created from flags, then from a file, updated, archived and deleted, then each step shows the plan', async () => {
    const created = await cli(
      [
        'plans',
        'create',
        '--code',
        code,
        '--name',
        'Pro',
        '--feature',
        'sso',
        '--limit',
        'projects=10',
        '--limit',
        'api_calls=unlimited',
        '--limit',
        'instances=5',
        '--json',
      ],
      { env },
    );
    expect(created.code).toBe(0);
    expect(JSON.parse(created.stdout)).toEqual(await serviceJson(s, `/api/plans/${code}`));
    expect((JSON.parse(created.stdout) as { plan: { entitlements: unknown } }).plan.entitlements).toEqual({
      features: ['sso'],
      limits: { projects: 10, api_calls: null, instances: 5 },
    });

    // --seats is gone (nothing enforced it): the instance limit is --limit instances=N.
    const seats = await cli(['plans', 'create', '--code', `${code}-s`, '--name', 'Seats', '--seats', '5'], { env });
    expect(seats.code).toBe(64);
    expect(seats.stderr).toMatch(/unknown option '--seats'/);
    expect((await cli(['plans', 'show', `${code}-s`], { env })).code).toBe(1);

    const fromFile = await cli(['plans', 'create', '--file', '-', '--code', `${code}-b`], {
      env,
      stdin: JSON.stringify({ name: 'Basic', entitlements: { features: [], limits: { projects: 1 } } }),
    });
    expect(fromFile.code).toBe(0);
    expect(fromFile.stdout).toMatch(/^code +cli-\w+-b\nname +Basic\n/);

    const updated = await cli(['plans', 'update', code, '--limit', 'projects=20', '--json'], { env });
    expect((JSON.parse(updated.stdout) as { plan: { entitlements: unknown } }).plan.entitlements).toEqual({
      features: ['sso'],
      limits: { projects: 20, api_calls: null, instances: 5 },
    });

    expect((await cli(['plans', 'archive', `${code}-b`], { env })).stderr).toMatch(/Archived plan/);
    const archived = await cli(['plans', 'list', '--status', 'archived'], { env });
    expect(archived.stdout).toContain(`${code}-b`);
    const del = await cli(['plans', 'delete', `${code}-b`], { env });
    expect(del.code).toBe(0);
    expect((await cli(['plans', 'show', `${code}-b`], { env })).code).toBe(1);
  });

  test('when a customer is subscribed with a trial, moved to another plan and canceled, then each answer shows the subscription', async () => {
    const c = await createCustomer();
    await cli(['plans', 'create', '--code', `${code}-s`, '--name', 'Small'], { env });
    await cli(['plans', 'create', '--code', `${code}-l`, '--name', 'Large'], { env });
    const created = await cli(['subscriptions', 'create', c.id, '--plan', `${code}-s`, '--trial-days', '14', '--json'], { env });
    expect(created.code).toBe(0);
    const sub = (JSON.parse(created.stdout) as { subscription: { id: string; status: string } }).subscription;
    expect(sub.status).toBe('trialing');
    const moved = await cli(['subscriptions', 'change-plan', c.id, sub.id, '--plan', `${code}-l`], { env });
    expect(moved.stdout).toMatch(new RegExp(`plan +${code}-l \\(Large\\)`));
    const canceled = await cli(['subscriptions', 'cancel', c.id, sub.id, '--immediately', '--json'], { env });
    expect((JSON.parse(canceled.stdout) as { subscription: { status: string } }).subscription.status).toBe('canceled');
    const list = await cli(['subscriptions', 'list', c.id], { env });
    expect(list.stdout).toMatch(new RegExp(`^ID +PLAN +STATUS.*\\n${sub.id} +${code}-l +canceled`));
  });
});

describe('activations', () => {
  test('when a customer’s activations are listed and one is released, then the routes GET and DELETE /api/customers/:id/activations[/:fingerprint] are called', async () => {
    const calls: string[] = [];
    const activation = {
      id: 'a1',
      customer_id: 'c1',
      fingerprint: 'fp-1',
      name: 'site A',
      hostname: 'host-a',
      created_at: '2026-01-01T00:00:00.000Z',
      last_seen_at: null,
      expires_at: null,
      released_at: null,
      release_reason: null,
    };
    const fake = ((url: URL | string, init?: RequestInit) => {
      calls.push(`${init?.method} ${new URL(String(url)).pathname}`);
      const body = init?.method === 'DELETE' ? { activation } : { data: [activation] };
      return Promise.resolve(new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' } }));
    }) as typeof fetch;
    const list = await cli(['activations', 'list', 'c1'], { env, fetch: fake });
    expect(list.stdout).toMatch(/^FINGERPRINT +NAME +HOSTNAME +ACTIVATED.*\nfp-1 +site A +host-a /);
    const released = await cli(['activations', 'release', 'c1', 'fp-1'], { env, fetch: fake });
    expect(released.stderr).toMatch(/Released instance fp-1/);
    expect(calls).toEqual(['GET /api/customers/c1/activations', 'DELETE /api/customers/c1/activations/fp-1']);
  });
});
