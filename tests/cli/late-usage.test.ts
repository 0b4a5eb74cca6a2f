import { randomUUID } from 'node:crypto';
import { createCustomer } from '../helpers/factories';
import { cli, serviceJson, startService, type Service } from './cli-harness';

/** billing-admin reports late and reports late-retry: the late-usage report and its retry, through the admin client. */
let s: Service;
let env: Record<string, string>;
let customerId: string;
const ids: string[] = [];
beforeAll(async () => {
  s = await startService({ USAGE_METRICS: 'api_calls,storage_gb' });
  env = { BILLING_API_URL: s.url, ADMIN_API_TOKEN: s.t.adminToken };
  customerId = (await createCustomer(s.t)).id;
  // Two bundles of late usage (Stripe off: local true-ups, the report alone).
  for (const events of [
    [
      { metric: 'api_calls', quantity: '12.5', occurredAt: new Date(Date.now() - 40 * 86_400_000) },
      { metric: 'storage_gb', quantity: '3', occurredAt: new Date(Date.now() - 39 * 86_400_000) },
    ],
    [{ metric: 'api_calls', quantity: '100', occurredAt: new Date(Date.now() - 38 * 86_400_000) }],
  ]) {
    const made = await s.t.db.transaction((trx) => s.t.c.trueUps.recordLate(trx, customerId, randomUUID(), events));
    ids.push(...made.map((m) => m.id));
  }
});
afterAll(async () => {
  // Nothing left pending for a worker in another file.
  await s.t.db('usage_true_ups').where({ customer_id: customerId, state: 'pending' }).update({ state: 'local', next_attempt_at: null });
  await s.close();
});

describe('reports late', () => {
  test('when asked for a customer, then a table of its true-ups, newest first, and the totals per metric', async () => {
    const r = await cli(['reports', 'late', '--customer', customerId], { env });
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^TRUE-UP +CUSTOMER +METRIC +QUANTITY +EVENTS +OCCURRED +STATE +ATTEMPTS +INVOICE ITEM \/ LAST ERROR$/);
    expect(lines.slice(1, 4).map((l) => l.split(/ +/)[0])).toEqual([...ids].sort().reverse());
    expect(r.stdout).toMatch(/api_calls +12\.5 +1 +\d{4}-\d{2}-\d{2}\.\.\d{4}-\d{2}-\d{2} +local +0/);
    expect(r.stdout).toContain('totals (every page):\nMETRIC      QUANTITY  EVENTS\napi_calls      112.5       2\nstorage_gb         3       1\n');
  });

  test('when --csv is asked, then stdout is the service’s CSV unchanged', async () => {
    const r = await cli(['reports', 'late', '--customer', customerId, '--csv'], { env });
    expect(r.code).toBe(0);
    const res = await fetch(`${s.url}/api/reports/usage/late?customer_id=${customerId}&format=csv`, { headers: { authorization: `Bearer ${s.t.adminToken}` } });
    expect(r.stdout).toBe(await res.text());
    expect(r.stdout.trimEnd().split('\n')).toHaveLength(4);
  });

  test('when --json is asked, then the service’s JSON; with --limit 1 --all, one page per line', async () => {
    const one = await cli(['reports', 'late', '--customer', customerId, '--metric', 'api_calls', '--json'], { env });
    expect(JSON.parse(one.stdout)).toEqual(await serviceJson(s, `/api/reports/usage/late?customer_id=${customerId}&metric=api_calls&format=json`));
    const all = await cli(['reports', 'late', '--customer', customerId, '--limit', '1', '--all', '--json'], { env });
    const pages = all.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { data: { id: string }[]; next_cursor: string | null });
    expect(pages.map((p) => p.data.map((d) => d.id))).toEqual(
      [...ids]
        .sort()
        .reverse()
        .map((id) => [id]),
    );
    expect(pages.at(-1)!.next_cursor).toBeNull();
  });

  test('when one page of several is shown, then the next cursor is offered', async () => {
    const r = await cli(['reports', 'late', '--customer', customerId, '--limit', '2'], { env });
    expect(r.stdout.split('\n').filter((l) => /^[0-9a-f]{8}-/.test(l))).toHaveLength(2);
    const cursor = /more: --cursor (\S+)/.exec(r.stderr)![1]!;
    const next = await cli(['reports', 'late', '--customer', customerId, '--limit', '2', '--cursor', cursor, '--json'], { env });
    expect(JSON.parse(next.stdout).data.map((d: { id: string }) => d.id)).toEqual([[...ids].sort()[0]]);
  });

  test('when a flag is wrong, then it exits 64 (a state that does not exist) or 2 (the service refuses the customer id), with a control', async () => {
    const state = await cli(['reports', 'late', '--state', 'billed'], { env });
    expect(state.code).toBe(64);
    expect(state.stderr).toMatch(/--state takes pending, sent, failed, local/);
    const customer = await cli(['reports', 'late', '--customer', 'not-a-uuid'], { env });
    expect(customer.code).toBe(2);
    expect(customer.stderr).toMatch(/- customer_id: /);
    expect((await cli(['reports', 'late', '--state', 'local', '--customer', customerId], { env })).code).toBe(0);
  });
});

describe('reports late-retry', () => {
  test('when given failed true-ups, then they are queued again; one not failed is left alone', async () => {
    await s.t.db('usage_true_ups').where({ id: ids[0] }).update({ state: 'failed', last_error: 'tiered prices: bill this true-up by hand' });
    const r = await cli(['reports', 'late-retry', ids[0]!, ids[1]!], { env });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('Queued 1 true-up(s) again.\n');
    expect(await s.t.db('usage_true_ups').where({ id: ids[0] }).first()).toMatchObject({ state: 'pending', attempts: 0 });
    expect(await s.t.db('usage_true_ups').where({ id: ids[1] }).first()).toMatchObject({ state: 'local' });

    const json = await cli(['reports', 'late-retry', ids[0]!, '--json'], { env });
    expect(JSON.parse(json.stdout)).toEqual({ requeued: 0, ids: [] });
    const bad = await cli(['reports', 'late-retry', 'nope'], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/- ids\.0: /);
  });
});
