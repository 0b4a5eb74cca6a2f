import { cli, cliProcess, serviceJson, startService, type Service } from './cli-harness';

/** The CLI against a real service instance: what it prints, and the exit code for each kind of failure. */
let s: Service;
let env: Record<string, string>;
beforeAll(async () => {
  s = await startService();
  env = { BILLING_API_URL: s.url, ADMIN_API_TOKEN: s.t.adminToken };
});
afterAll(() => s.close());

const email = () => `cli-${Math.random().toString(16).slice(2, 10)}@example.com`;
const KEY = /^cust_[0-9a-f-]{36}_[A-Za-z0-9_-]{43}$/;
const me = (key: string) => fetch(`${s.url}/api/me`, { headers: { 'x-api-key': key } });

async function createCustomer(): Promise<{ id: string; key: string }> {
  const r = await cli(['customers', 'create', '--email', email(), '--company', 'Acme', '--json'], { env });
  expect(r.code).toBe(0);
  const body = JSON.parse(r.stdout) as { customer: { id: string }; api_key: string };
  return { id: body.customer.id, key: body.api_key };
}

describe('billing-admin customers create (the bin, in a child process)', () => {
  test('when a customer is created, then stdout holds only the new key and the warning to store it goes to stderr', async () => {
    const r = await cliProcess(['customers', 'create', '--email', email(), '--company', 'Acme'], env);
    expect(r.code).toBe(0);
    expect(r.stdout.endsWith('\n')).toBe(true);
    expect(r.stdout.trimEnd()).toMatch(KEY);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/Store this API key now: it is shown this once/);
    expect((await me(r.stdout.trim())).status).toBe(200);
  }, 60_000);

  test('when the token is wrong, then it exits 3, says to check ADMIN_API_TOKEN and never prints the token', async () => {
    const wrong = 'wrong-token-0123456789abcdef-never-printed';
    const r = await cliProcess(['customers', 'list'], { ...env, ADMIN_API_TOKEN: wrong });
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/401 UNAUTHORIZED/);
    expect(r.stderr).toMatch(/Check ADMIN_API_TOKEN/);
    expect(r.stdout + r.stderr).not.toContain(wrong);
  }, 60_000);
});

describe('--json prints the service’s JSON unchanged', () => {
  test('when a customer, its keys and the plans are read with --json, then each equals what the service answers', async () => {
    const c = await createCustomer();
    for (const [argv, path] of [
      [['customers', 'show', c.id], `/api/customers/${c.id}`],
      [['keys', 'list', c.id], `/api/customers/${c.id}/keys`],
      [['plans', 'list'], '/api/plans'],
      [['subscriptions', 'list', c.id], `/api/customers/${c.id}/subscriptions`],
      [['forwarding'], '/api/reports/forwarding'],
      [['webhooks'], '/api/reports/webhooks'],
    ] as const) {
      const r = await cli([...argv, '--json'], { env });
      expect(r.code).toBe(0);
      // The forwarding report carries ages and rates measured at the moment of each call.
      const steady = (body: Record<string, unknown>) => ({ ...body, oldest_pending_age_seconds: 0, events_per_second: 0, sent_last_minute: 0 });
      const [fromCli, fromService] = [JSON.parse(r.stdout) as Record<string, unknown>, (await serviceJson(s, path)) as Record<string, unknown>];
      if (argv[0] === 'forwarding') expect(steady(fromCli)).toEqual(steady(fromService));
      else expect(fromCli).toEqual(fromService);
    }
  });

  test('when the token comes from --token, then it works and is not echoed', async () => {
    const r = await cli(['--token', s.t.adminToken, '--url', s.url, 'customers', 'list', '--limit', '1']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ID +EMAIL +COMPANY +STATUS +CREATED\n/);
    expect(r.stdout + r.stderr).not.toContain(s.t.adminToken);
  });
});

describe('failures: one exit code per kind, and what to do', () => {
  test('when the body is invalid, then it exits 2 and lists the field problems', async () => {
    const r = await cli(['customers', 'create', '--email', 'not-an-email', '--company', 'Acme'], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/422 VALIDATION_FAILED/);
    expect(r.stderr).toMatch(/\n {2}- email: /);
    expect(r.stdout).toBe('');
  });

  test('when the customer does not exist, then it exits 1 with the service’s code', async () => {
    const r = await cli(['customers', 'show', '00000000-0000-4000-8000-000000000000'], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/404 NOT_FOUND/);
  });

  test('when the command line is wrong, then it exits 64', async () => {
    expect((await cli(['customers', 'frobnicate'], { env })).code).toBe(64);
    expect((await cli(['customers', 'create', '--email', 'a@b.example'], { env })).code).toBe(64);
    expect((await cli(['keys', 'rotate', '00000000-0000-4000-8000-000000000000', '--grace', 'soon'], { env })).code).toBe(64);
    const both = await cli(['usage', 'report', '--csv', '--chart'], { env });
    expect(both.code).toBe(64);
    expect(both.stderr).toMatch(/choose one of --csv, --chart and --json/);
    const noToken = await cli(['customers', 'list'], { env: { BILLING_API_URL: s.url } });
    expect(noToken.code).toBe(64);
    expect(noToken.stderr).toMatch(/set ADMIN_API_TOKEN/);
  });

  test('when the service cannot be reached, then it exits 5 and names BILLING_API_URL', async () => {
    const r = await cli(['customers', 'list'], { env: { ...env, BILLING_API_URL: 'http://127.0.0.1:9' } });
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/could not reach http:\/\/127\.0\.0\.1:9.*BILLING_API_URL/);
  });

  test('when the admin rate limit is spent, then it exits 4 at once and says when to retry from Retry-After', async () => {
    const limited = await startService({ RATE_LIMIT_ADMIN: '2/1h' });
    try {
      const e = { BILLING_API_URL: limited.url, ADMIN_API_TOKEN: limited.t.adminToken };
      expect((await cli(['plans', 'list'], { env: e })).code).toBe(0);
      expect((await cli(['plans', 'list'], { env: e })).code).toBe(0);
      const started = Date.now();
      const r = await cli(['plans', 'list'], { env: e });
      expect(Date.now() - started).toBeLessThan(5000);
      expect(r.code).toBe(4);
      expect(r.stderr).toMatch(/429 RATE_LIMITED/);
      expect(r.stderr).toMatch(/Retry-After: \d+ s, try again after \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/);
    } finally {
      await limited.close();
    }
  });
});

describe('keys', () => {
  test('when a key is rotated with --grace, then only the new key is printed and the old one stays valid until the grace ends', async () => {
    const c = await createCustomer();
    const r = await cli(['keys', 'rotate', c.id, '--grace', '3600'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout.trimEnd()).toMatch(KEY);
    expect(r.stderr).toMatch(/1 older key\(s\) valid for 3600 s more/);
    expect((await me(c.key)).status).toBe(200);
    expect((await me(r.stdout.trim())).status).toBe(200);
    const keys = JSON.parse((await cli(['keys', 'list', c.id, '--json'], { env })).stdout) as { data: { expires_at: string | null }[] };
    const expiring = keys.data.filter((k) => k.expires_at !== null);
    expect(expiring).toHaveLength(1);
    expect(Date.parse(expiring[0]!.expires_at!) - Date.now()).toBeGreaterThan(3500_000);
  });

  test('when keys are revoked, then the key stops working', async () => {
    const c = await createCustomer();
    const keyId = (JSON.parse((await cli(['keys', 'list', c.id, '--json'], { env })).stdout) as { data: { id: string }[] }).data[0]!.id;
    const r = await cli(['keys', 'revoke', c.id, keyId], { env });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/Revoked key/);
    expect((await me(c.key)).status).toBe(401);
  });

  test('when rotate-all names customers, then it prints one "customer<TAB>key" line each and older keys keep their grace', async () => {
    const a = await createCustomer();
    const b = await createCustomer();
    const r = await cli(['keys', 'rotate-all', '--grace', '600', '--customer', a.id, '--customer', b.id], { env });
    expect(r.code).toBe(0);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => l.split('\t'));
    expect(lines.map(([id]) => id).sort()).toEqual([a.id, b.id].sort());
    for (const [, key] of lines) expect(key).toMatch(KEY);
    expect(r.stderr).toMatch(/Rotated 2 customer\(s\) in 1 request\(s\); older keys stay valid for 600 s/);
    expect((await me(a.key)).status).toBe(200);
  });

  test('when rotate-all pages, then it sends each next_cursor back with the grace and prints every page’s keys', async () => {
    const bodies: Record<string, unknown>[] = [];
    const key = (n: number) => ({
      id: `k${n}`,
      customer_id: `c${n}`,
      name: null,
      start: 'x',
      status: 'active',
      created_at: '',
      last_used_at: null,
      expires_at: null,
      revoked_at: null,
    });
    const pages = [
      {
        rotated: 1,
        grace_period_seconds: 60,
        keys: [{ customer_id: 'c1', api_key: 'cust_one', key: key(1), ended_key_ids: [] }],
        skipped: [],
        next_cursor: 'CUR1',
      },
      {
        rotated: 1,
        grace_period_seconds: 60,
        keys: [{ customer_id: 'c2', api_key: 'cust_two', key: key(2), ended_key_ids: [] }],
        skipped: [{ customer_id: 'c3', reason: 'too_many_keys' }],
        next_cursor: null,
      },
    ];
    const fake = ((_url: unknown, init?: RequestInit) => {
      bodies.push(JSON.parse(init?.body as string) as Record<string, unknown>);
      return Promise.resolve(new Response(JSON.stringify(pages[bodies.length - 1]), { status: 200, headers: { 'content-type': 'application/json' } }));
    }) as typeof fetch;
    const r = await cli(['keys', 'rotate-all', '--grace', '60', '--page-size', '1'], { env, fetch: fake });
    expect(r.code).toBe(0);
    expect(bodies).toEqual([
      { grace_period_seconds: 60, limit: 1 },
      { grace_period_seconds: 60, limit: 1, cursor: 'CUR1' },
    ]);
    expect(r.stdout).toBe('c1\tcust_one\nc2\tcust_two\n');
    expect(r.stderr).toMatch(/skipped c3: too_many_keys/);
    bodies.length = 0;
    const json = await cli(['--json', 'keys', 'rotate-all', '--grace', '60', '--page-size', '1'], { env, fetch: fake });
    expect(
      json.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as unknown),
    ).toEqual(pages);
  });
});
