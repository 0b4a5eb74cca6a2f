/**
 * GET /api/reports/usage/late: late usage billed by true-ups, filtered (customer, metric, state,
 * when recorded), paged newest first by keyset, with totals over every page, as JSON or CSV.
 */
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { lateReportResponse } from '../../src/modules/true-ups/true-ups-schemas';
import { expectError } from '../helpers/envelope';
import { createCustomer } from '../helpers/factories';
import { createTestApp, type TestApp } from '../helpers/test-app';

let t: TestApp;
let admin: Record<string, string>;
beforeAll(async () => {
  t = await createTestApp({ USAGE_METRICS: 'api_calls,storage_gb' });
  admin = { Authorization: `Bearer ${t.adminToken}` };
});
afterAll(() => t.close());

const DAY = 86_400_000;
const get = (query: string) => request(t.app).get(`/api/reports/usage/late?${query}`).set(admin);

/** One bundle's late usage (one true-up per metric), recorded at `createdAt`; the true-ups, by metric. */
async function bundle(customerId: string, events: [metric: string, quantity: string][], createdAt?: string) {
  const late = events.map(([metric, quantity], i) => ({ metric, quantity, occurredAt: new Date(Date.now() - (40 + i) * DAY) }));
  const made = await t.db.transaction((trx) => t.c.trueUps.recordLate(trx, customerId, randomUUID(), late));
  if (createdAt) await t.db.raw('update usage_true_ups set created_at = ? where id = any(?::uuid[])', [createdAt, made.map((m) => m.id)]);
  return made;
}

describe('filters, totals and pages', () => {
  let a: string;
  let b: string;
  const ids = {} as Record<'janCalls' | 'janStorage' | 'jan20' | 'febStorage' | 'febCalls', string>;
  beforeAll(async () => {
    a = (await createCustomer(t)).id;
    b = (await createCustomer(t)).id;
    // Customer a: three bundles over January and February; b: one.
    const jan10 = await bundle(
      a,
      [
        ['api_calls', '10'],
        ['api_calls', '2.5'],
        ['storage_gb', '1'],
      ],
      '2026-01-10T12:00:00Z',
    );
    const jan20 = await bundle(a, [['api_calls', '100']], '2026-01-20T12:00:00Z');
    const feb05 = await bundle(
      a,
      [
        ['storage_gb', '4.75'],
        ['api_calls', '0.5'],
      ],
      '2026-02-05T12:00:00Z',
    );
    await bundle(b, [['api_calls', '999']]);
    ids.janCalls = jan10.find((x) => x.metric === 'api_calls')!.id;
    ids.janStorage = jan10.find((x) => x.metric === 'storage_gb')!.id;
    ids.jan20 = jan20[0]!.id;
    ids.febStorage = feb05.find((x) => x.metric === 'storage_gb')!.id;
    ids.febCalls = feb05.find((x) => x.metric === 'api_calls')!.id;
    await t.db('usage_true_ups').where({ id: ids.jan20 }).update({ state: 'failed', last_error: 'customer not linked to Stripe' });
  });

  test('when one customer is asked for, then only its true-ups are listed, newest first, with every field and its totals', async () => {
    const res = await get(`customer_id=${a}`);
    expect(res.status).toBe(200);
    expect(lateReportResponse.safeParse(res.body).success).toBe(true);
    expect(res.body.data.map((d: { id: string }) => d.id)).toEqual([ids.janCalls, ids.janStorage, ids.jan20, ids.febStorage, ids.febCalls].sort().reverse());
    expect(res.body.data.find((d: { id: string }) => d.id === ids.janCalls)).toEqual({
      id: ids.janCalls,
      customer_id: a,
      bundle_id: expect.any(String),
      metric: 'api_calls',
      quantity: '12.5',
      events: 2,
      occurred_from: expect.any(String),
      occurred_to: expect.any(String),
      state: 'local',
      attempts: 0,
      last_error: null,
      stripe_price_id: null,
      stripe_invoice_item_id: null,
      created_at: '2026-01-10T12:00:00.000Z',
      sent_at: null,
    });
    expect(res.body.totals).toEqual([
      { metric: 'api_calls', quantity: '113', events: 4 },
      { metric: 'storage_gb', quantity: '5.75', events: 2 },
    ]);
    expect(res.body.next_cursor).toBeNull();
  });

  test('when metric, state or the recording period are given, then only the matching true-ups are listed and totalled', async () => {
    const metric = await get(`customer_id=${a}&metric=storage_gb`);
    expect(metric.body.data.map((d: { id: string }) => d.id).sort()).toEqual([ids.janStorage, ids.febStorage].sort());
    expect(metric.body.totals).toEqual([{ metric: 'storage_gb', quantity: '5.75', events: 2 }]);

    const failed = await get(`customer_id=${a}&state=failed`);
    expect(failed.body.data).toMatchObject([{ id: ids.jan20, state: 'failed', last_error: 'customer not linked to Stripe' }]);
    expect(failed.body.totals).toEqual([{ metric: 'api_calls', quantity: '100', events: 1 }]);

    // from and to bound created_at (when the bundle was uploaded), [from, to).
    const january = await get(`customer_id=${a}&from=2026-01-01&to=2026-01-20T12:00:00Z`);
    expect(january.body.data.map((d: { id: string }) => d.id).sort()).toEqual([ids.janCalls, ids.janStorage].sort());
    const fromJan20 = await get(`customer_id=${a}&from=2026-01-20T12:00:00Z`);
    expect(fromJan20.body.data.map((d: { id: string }) => d.id).sort()).toEqual([ids.jan20, ids.febStorage, ids.febCalls].sort());
    expect(fromJan20.body.totals).toEqual([
      { metric: 'api_calls', quantity: '100.5', events: 2 },
      { metric: 'storage_gb', quantity: '4.75', events: 1 },
    ]);
  });

  test('when pages of 2 are followed, then every true-up comes once, in order, and every page carries the totals of all', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await get(`customer_id=${a}&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      expect(res.body.data.length).toBeLessThanOrEqual(2);
      expect(res.body.totals).toEqual([
        { metric: 'api_calls', quantity: '113', events: 4 },
        { metric: 'storage_gb', quantity: '5.75', events: 2 },
      ]);
      seen.push(...res.body.data.map((d: { id: string }) => d.id));
      cursor = res.body.next_cursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual([ids.janCalls, ids.janStorage, ids.jan20, ids.febStorage, ids.febCalls].sort().reverse());
  });

  test('when format=csv is asked, then every matching true-up is a CSV row under a header, Stripe’s words quoted and defused', async () => {
    await t.db('usage_true_ups').where({ id: ids.febCalls }).update({ state: 'failed', last_error: 'StripeInvalidRequestError 400: "bad" price, really' });
    await t.db('usage_true_ups').where({ id: ids.febStorage }).update({ state: 'failed', last_error: '=HYPERLINK("x")' });
    const res = await get(`customer_id=${a}&format=csv&limit=1`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/csv/);
    expect(res.headers['content-disposition']).toBe('attachment; filename="late-usage.csv"');
    const lines = res.text.trimEnd().split('\n');
    expect(lines[0]).toBe(
      'id,customer_id,bundle_id,metric,quantity,events,occurred_from,occurred_to,state,attempts,last_error,stripe_price_id,stripe_invoice_item_id,created_at,sent_at',
    );
    // limit and cursor page the JSON only.
    expect(lines).toHaveLength(6);
    expect(lines.find((l) => l.startsWith(ids.febCalls))).toContain(
      ',failed,0,"StripeInvalidRequestError 400: ""bad"" price, really",,,2026-02-05T12:00:00.000Z,',
    );
    expect(lines.find((l) => l.startsWith(ids.febStorage))).toContain(`,failed,0,"'=HYPERLINK(""x"")",`);
    expect(lines.find((l) => l.startsWith(ids.janCalls))).toMatch(
      new RegExp(`^${ids.janCalls},${a},[0-9a-f-]{36},api_calls,12\\.5,2,[^,]+,[^,]+,local,0,,,,2026-01-10T12:00:00\\.000Z,$`),
    );
  });
});

describe('refusals, each with its control', () => {
  test.each([
    ['to before from', 'from=2026-02-01&to=2026-01-01', 'from=2026-01-01&to=2026-02-01'],
    ['a state that does not exist', 'state=billed', 'state=sent'],
    ['a malformed customer id', 'customer_id=nope', `customer_id=${randomUUID()}`],
    ['a cursor not from this list', `cursor=${Buffer.from('not-an-id').toString('base64url')}`, `cursor=${Buffer.from(randomUUID()).toString('base64url')}`],
    ['a limit above 200', 'limit=201', 'limit=200'],
    ['an unknown parameter', 'group_by=day', 'metric=api_calls'],
  ])('when given %s, then 422', async (_label, bad, good) => {
    expectError(await get(bad), 422, 'VALIDATION_FAILED');
    expect((await get(good)).status).toBe(200);
  });
});
