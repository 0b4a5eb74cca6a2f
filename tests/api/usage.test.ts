import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { expectError } from '../helpers/envelope';
import { CreatedCustomer, createCustomer } from '../helpers/factories';
import { createTestApp, TestApp } from '../helpers/test-app';

let t: TestApp;
let admin: Record<string, string>;
beforeAll(async () => {
  t = await createTestApp({ USAGE_METRICS: 'api_calls,storage_gb', USAGE_MAX_BATCH: '1000' });
  admin = { Authorization: `Bearer ${t.adminToken}` };
});
afterAll(() => t.close());

const key = () => `k-${randomBytes(8).toString('hex')}`;
const post = (c: CreatedCustomer, body: unknown) =>
  request(t.app)
    .post('/api/usage')
    .set('X-API-Key', c.apiKey)
    .send(body as object);
/** The customers this file made: the totals check reads theirs (other files drop and restore months of their own). */
const created: string[] = [];
const customer = async () => {
  const c = await createCustomer(t);
  created.push(c.id);
  return c;
};
const rows = (c: CreatedCustomer) => t.db('usage_events').where({ customer_id: c.id }).orderBy('id');
const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000).toISOString();

describe('POST /api/usage: one event', () => {
  test('when an event is reported, then it is committed and returned with its id', async () => {
    const c = await customer();
    const k = key();
    const res = await post(c, { metric: 'api_calls', quantity: 42, occurred_at: minutesAgo(1), idempotency_key: k });
    expect(res.status).toBe(201);
    expect(res.body.event).toMatchObject({ metric: 'api_calls', quantity: '42', idempotency_key: k, replayed: false });
    const stored = await rows(c);
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({ id: res.body.event.id, quantity: '42.000000', state: 'l' }); // local: Stripe is off
    expect(stored[0]!.occurred_at.toISOString()).toBe(res.body.event.occurred_at);
  });

  test('when the same event is sent twice, then the replay returns the original and adds no row', async () => {
    const c = await customer();
    const body = { metric: 'api_calls', quantity: '1.5', idempotency_key: key() };
    const first = await post(c, body);
    const second = await post(c, body);
    expect(first.status).toBe(201);
    expect(second.status).toBe(200);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.body.event).toEqual({ ...first.body.event, replayed: true });
    expect(await rows(c)).toHaveLength(1);
  });

  test('when the same event is sent 20 times at once, then exactly one row exists and every answer names it', async () => {
    const c = await customer();
    const body = { metric: 'api_calls', quantity: 3, idempotency_key: key() };
    const results = await Promise.all(Array.from({ length: 20 }, () => post(c, body)));
    expect(results.map((r) => r.status).sort()).toEqual([...Array(19).fill(200), 201]);
    expect(new Set(results.map((r) => r.body.event.id)).size).toBe(1);
    expect(await rows(c)).toHaveLength(1);
    const daily = await t.db('usage_daily').where({ customer_id: c.id });
    expect(daily).toEqual([expect.objectContaining({ metric: 'api_calls', quantity: '3.000000', events: '1' })]); // one shard row
  });

  test('when a key is reused with a different body, then 409 IDEMPOTENCY_CONFLICT and nothing changes', async () => {
    const c = await customer();
    const k = key();
    await post(c, { metric: 'api_calls', quantity: 1, idempotency_key: k }).expect(201);
    expectError(await post(c, { metric: 'api_calls', quantity: 2, idempotency_key: k }), 409, 'IDEMPOTENCY_CONFLICT');
    expectError(await post(c, { metric: 'storage_gb', quantity: 1, idempotency_key: k }), 409, 'IDEMPOTENCY_CONFLICT');
    const stored = await rows(c);
    expect(stored).toHaveLength(1);
    expect(stored[0]!.quantity).toBe('1.000000');
  });

  test('when different bodies race on one key, then one wins and the rest are replays or conflicts', async () => {
    const c = await customer();
    const k = key();
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => post(c, { metric: 'api_calls', quantity: i % 2, idempotency_key: k })));
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    const winner = results.find((r) => r.status === 201)!.body.event;
    for (const r of results) {
      if (r.status === 200) expect(r.body.event.quantity).toBe(winner.quantity);
      else if (r.status === 409) expect(r.body.error.code).toBe('IDEMPOTENCY_CONFLICT');
      else expect(r.status).toBe(201);
    }
    expect(await rows(c)).toHaveLength(1);
  });

  test('when two customers use the same idempotency key, then each gets its own event', async () => {
    const [a, b] = [await customer(), await customer()];
    const k = key();
    await post(a, { metric: 'api_calls', quantity: 1, idempotency_key: k }).expect(201);
    await post(b, { metric: 'api_calls', quantity: 5, idempotency_key: k }).expect(201);
    expect((await rows(a))[0]!.quantity).toBe('1.000000');
    expect((await rows(b))[0]!.quantity).toBe('5.000000');
  });

  test('when the key comes in the Idempotency-Key header, then it is used; a different body key is refused', async () => {
    const c = await customer();
    const k = key();
    const res = await request(t.app).post('/api/usage').set('X-API-Key', c.apiKey).set('Idempotency-Key', k).send({ metric: 'api_calls', quantity: 1 });
    expect(res.status).toBe(201);
    expect(res.body.event.idempotency_key).toBe(k);
    const clash = await request(t.app)
      .post('/api/usage')
      .set('X-API-Key', c.apiKey)
      .set('Idempotency-Key', k)
      .send({ metric: 'api_calls', quantity: 1, idempotency_key: 'other' });
    expectError(clash, 422, 'VALIDATION_FAILED');
  });

  test('when occurred_at is absent, then it defaults to now and a replay still matches', async () => {
    const c = await customer();
    const body = { metric: 'api_calls', quantity: 1, idempotency_key: key() };
    const first = await post(c, body);
    expect(Math.abs(Date.parse(first.body.event.occurred_at) - Date.now())).toBeLessThan(10_000);
    await new Promise((r) => setTimeout(r, 5));
    expect((await post(c, body)).status).toBe(200);
  });

  const bad: [string, Record<string, unknown>][] = [
    ['a negative quantity', { quantity: -1 }],
    ['a negative quantity string', { quantity: '-0.5' }],
    ['NaN', { quantity: 'NaN' }],
    ['Infinity', { quantity: 'Infinity' }],
    ['a huge quantity', { quantity: 1e15 }],
    ['a huge quantity string', { quantity: '123456789012345' }],
    ['an exponent', { quantity: 1e21 }],
    ['an over-precise quantity', { quantity: 0.1234567 }],
    ['an over-precise quantity string', { quantity: '1.0000001' }],
    ['a number with more digits than JSON carries', { quantity: 1234567890.123456 }],
    ['a boolean quantity', { quantity: true }],
    ['no quantity', { quantity: undefined }],
    ['an unknown metric', { metric: 'bananas' }],
    ['no metric', { metric: undefined }],
    ['occurred_at 36 days ago', { occurred_at: new Date(Date.now() - 36 * 86_400_000).toISOString() }],
    ['occurred_at 10 minutes ahead', { occurred_at: new Date(Date.now() + 10 * 60_000).toISOString() }],
    ['occurred_at without a time zone', { occurred_at: '2026-11-20T10:00:00' }],
    ['occurred_at that is not a date', { occurred_at: 'yesterday' }],
    ['no idempotency key', { idempotency_key: undefined }],
    ['an empty idempotency key', { idempotency_key: '' }],
    ['a 256-character idempotency key', { idempotency_key: 'x'.repeat(256) }],
    ['a non-printable idempotency key', { idempotency_key: 'a\nb' }],
    ['an unknown field', { customer_id: '01900000-0000-7000-8000-000000000000' }],
  ];
  test.each(bad)('when the event has %s, then 422 and no row', async (_label, change) => {
    const c = await customer();
    const body = { metric: 'api_calls', quantity: 1, idempotency_key: key(), ...change };
    for (const [k, v] of Object.entries(body)) if (v === undefined) delete (body as Record<string, unknown>)[k];
    expectError(await post(c, body), 422, 'VALIDATION_FAILED');
    expect(await rows(c)).toHaveLength(0);
  });

  test.each([
    ['0', '0'],
    ['12.500000', '12.5'],
    [0.000001, '0.000001'],
    ['99999999999999.999999', '99999999999999.999999'],
    [123456789, '123456789'],
  ])('when the quantity is %j, then it is stored exactly as %s', async (quantity, expected) => {
    const c = await customer();
    const res = await post(c, { metric: 'api_calls', quantity, idempotency_key: key() });
    expect(res.status).toBe(201);
    expect(res.body.event.quantity).toBe(expected);
  });
});

describe('POST /api/usage: a batch', () => {
  const events = (n: number, extra: Record<string, unknown> = {}) =>
    Array.from({ length: n }, (_, i) => ({ metric: 'api_calls', quantity: i + 1, idempotency_key: key(), occurred_at: minutesAgo(2), ...extra }));

  test('when a batch is reported, then every event is stored and returned in order', async () => {
    const c = await customer();
    const batch = events(50);
    const res = await post(c, { events: batch });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ created: 50, replayed: 0 });
    expect(res.body.events.map((e: { idempotency_key: string }) => e.idempotency_key)).toEqual(batch.map((e) => e.idempotency_key));
    expect(await rows(c)).toHaveLength(50);
  });

  test('when keys hold what an array literal treats specially, then each is stored and answered exactly', async () => {
    const c = await customer();
    const tag = randomBytes(4).toString('hex');
    const keys = ['NULL', 'null', '', ' ', 'a,b', '{x}', 'q"uote', 'back\\slash', '\\"', ' lead', 'trail ', '"'].map((k) => `${k}${tag}`);
    const res = await post(c, { events: keys.map((k) => ({ metric: 'api_calls', quantity: '0.5', idempotency_key: k })) });
    expect(res.status).toBe(201);
    expect(res.body.events.map((e: { idempotency_key: string }) => e.idempotency_key)).toEqual(keys);
    const stored = await rows(c);
    expect(stored.map((r: { idempotency_key: string }) => r.idempotency_key).sort()).toEqual([...keys].sort());
    // The same keys alone, through the group write: replays of what the batch stored.
    for (const k of keys) expect((await post(c, { metric: 'api_calls', quantity: '0.5', idempotency_key: k })).status).toBe(200);
  });

  test('when one event of a batch is bad, then 422 names it by index and nothing is written', async () => {
    const c = await customer();
    const batch = events(10);
    batch[3]!.quantity = -4;
    batch[7]!.metric = 'nope';
    const res = await post(c, { events: batch });
    expectError(res, 422, 'VALIDATION_FAILED');
    expect(res.body.error.details.map((d: { index: number }) => d.index)).toEqual([3, 7]);
    expect(res.body.error.details[0].path).toBe('events.3.quantity');
    expect(await rows(c)).toHaveLength(0);
  });

  test('when a batch holds 1,001 events, then 422 says the most it may hold and nothing is written', async () => {
    const c = await customer();
    // Within the route's body limit (the next test sends 1,000): the batch's size decides, not the body's.
    const res = await post(c, { events: events(1001) });
    expectError(res, 422, 'VALIDATION_FAILED');
    expect(res.body.error.details).toContainEqual(expect.objectContaining({ path: 'events', message: 'must hold at most 1000 events' }));
    expect(await rows(c)).toHaveLength(0);
  });

  test('when a batch of 1,000 events is reported, then all are stored in one request', async () => {
    const c = await customer();
    const res = await post(c, { events: events(1000) });
    expect(res.status).toBe(201);
    expect(await rows(c)).toHaveLength(1000);
  });

  test('when a batch is replayed, then 200 with the same ids and no new rows', async () => {
    const c = await customer();
    const batch = events(5);
    const first = await post(c, { events: batch });
    const second = await post(c, { events: batch });
    expect(second.status).toBe(200);
    expect(second.body).toMatchObject({ created: 0, replayed: 5 });
    expect(second.body.events.map((e: { id: string }) => e.id)).toEqual(first.body.events.map((e: { id: string }) => e.id));
    expect(await rows(c)).toHaveLength(5);
  });

  test('when a batch reuses a stored key with another body, then 409 and none of the batch is written', async () => {
    const c = await customer();
    const k = key();
    await post(c, { metric: 'api_calls', quantity: 1, idempotency_key: k }).expect(201);
    const batch = [...events(4), { metric: 'api_calls', quantity: 2, idempotency_key: k }];
    expectError(await post(c, { events: batch }), 409, 'IDEMPOTENCY_CONFLICT');
    expect(await rows(c)).toHaveLength(1);
    expect(await t.db('usage_daily').where({ customer_id: c.id }).sum({ n: 'events' })).toEqual([{ n: '1' }]);
  });

  test('when a batch repeats one key with different bodies, then 422 names the repeat', async () => {
    const c = await customer();
    const k = key();
    const res = await post(c, {
      events: [
        { metric: 'api_calls', quantity: 1, idempotency_key: k },
        { metric: 'api_calls', quantity: 2, idempotency_key: k },
      ],
    });
    expectError(res, 422, 'VALIDATION_FAILED');
    expect(res.body.error.details[0]).toMatchObject({ index: 1, path: 'events.1.idempotency_key' });
  });

  test('when an event sent in a batch is replayed alone, and the other way round, then both paths recognise it', async () => {
    const c = await customer();
    const e1 = { metric: 'api_calls', quantity: '2.5', idempotency_key: key() };
    const e2 = { metric: 'storage_gb', quantity: 3, occurred_at: minutesAgo(3), idempotency_key: key() };
    const batch = await post(c, { events: [e1, e2] });
    expect(batch.status).toBe(201);
    const [id1, id2] = batch.body.events.map((e: { id: string }) => e.id);
    expect((await post(c, e1)).body.event).toMatchObject({ id: id1, replayed: true });
    expect((await post(c, e2)).body.event).toMatchObject({ id: id2, replayed: true });
    expectError(await post(c, { ...e1, quantity: '2.6' }), 409, 'IDEMPOTENCY_CONFLICT');

    const e3 = { metric: 'api_calls', quantity: 0.75, occurred_at: minutesAgo(1), idempotency_key: key() };
    const single = await post(c, e3);
    expect(single.status).toBe(201);
    const again = await post(c, { events: [e3] });
    expect(again.status).toBe(200);
    expect(again.body.events).toEqual([{ id: single.body.event.id, idempotency_key: e3.idempotency_key, replayed: true }]);
    expect(await rows(c)).toHaveLength(3);
  });

  test.each([[{ events: [] }], [{ events: 'x' }], [{ events: [1, 2] }], [{ events: [], extra: 1 }]])('when the batch is %j, then 422', async (body) => {
    const c = await customer();
    expectError(await post(c, body), 422, 'VALIDATION_FAILED');
  });
});

describe('reading usage', () => {
  let a: CreatedCustomer;
  let b: CreatedCustomer;
  // Events on three UTC days, chosen so that a period with ragged edges needs both the daily
  // totals and the raw events at either end.
  const day = (offset: number, h: number, m = 0) => {
    const d = new Date();
    return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() - offset, h, m)).toISOString();
  };
  beforeAll(async () => {
    a = await customer();
    b = await customer();
    const ev = (occurred_at: string, quantity: string | number, metric = 'api_calls') => ({ metric, quantity, occurred_at, idempotency_key: key() });
    await post(a, {
      events: [ev(day(3, 1), 1), ev(day(3, 23), 2), ev(day(2, 12), 4), ev(day(1, 0, 30), 8), ev(day(1, 22), 16), ev(day(2, 5), '0.25', 'storage_gb')],
    }).expect(201);
    await post(b, { events: [ev(day(2, 12), 1000)] }).expect(201);
  });

  test('when a customer reads its usage over a ragged period, then totals are exact per metric', async () => {
    const res = await request(t.app)
      .get('/api/usage')
      .query({ from: day(3, 12), to: day(1, 12) })
      .set('X-API-Key', a.apiKey);
    expect(res.status).toBe(200);
    expect(res.body.customer_id).toBe(a.id);
    expect(res.body.totals).toEqual([
      { metric: 'api_calls', quantity: '14', events: 3 },
      { metric: 'storage_gb', quantity: '0.25', events: 1 },
    ]);
  });

  test('when grouped by day, then each UTC day has its own totals', async () => {
    const res = await request(t.app)
      .get('/api/usage')
      .query({ from: day(3, 0), to: day(0, 0), group_by: 'day' })
      .set('X-API-Key', a.apiKey);
    expect(res.body.totals).toEqual([
      { day: day(3, 0).slice(0, 10), metric: 'api_calls', quantity: '3', events: 2 },
      { day: day(2, 0).slice(0, 10), metric: 'api_calls', quantity: '4', events: 1 },
      { day: day(2, 0).slice(0, 10), metric: 'storage_gb', quantity: '0.25', events: 1 },
      { day: day(1, 0).slice(0, 10), metric: 'api_calls', quantity: '24', events: 2 },
    ]);
  });

  test('when the period is within one day, then only the raw events count', async () => {
    const res = await request(t.app)
      .get('/api/usage')
      .query({ from: day(1, 0), to: day(1, 1) })
      .set('X-API-Key', a.apiKey);
    expect(res.body.totals).toEqual([{ metric: 'api_calls', quantity: '8', events: 1 }]);
  });

  test("when a customer reads usage, then another customer's events never count", async () => {
    const res = await request(t.app)
      .get('/api/usage')
      .query({ from: day(3, 0), to: day(0, 0) })
      .set('X-API-Key', b.apiKey);
    expect(res.body.totals).toEqual([{ metric: 'api_calls', quantity: '1000', events: 1 }]);
    expect(JSON.stringify(res.body)).not.toContain(a.id);
  });

  test('when an admin reads one customer, then the same totals come back; an unknown customer is 404', async () => {
    const res = await request(t.app)
      .get(`/api/customers/${a.id}/usage`)
      .query({ from: day(3, 12), to: day(1, 12) })
      .set(admin);
    expect(res.body.totals).toEqual([
      { metric: 'api_calls', quantity: '14', events: 3 },
      { metric: 'storage_gb', quantity: '0.25', events: 1 },
    ]);
    expectError(await request(t.app).get('/api/customers/01900000-0000-7000-8000-000000000000/usage').set(admin), 404, 'NOT_FOUND');
  });

  test('when an admin reports across customers, then rows per customer come back as JSON and CSV', async () => {
    const q = { from: day(3, 0), to: day(0, 0), metric: 'api_calls' };
    const json = await request(t.app).get('/api/reports/usage').query(q).set(admin);
    expect(json.status).toBe(200);
    const mine = json.body.rows.filter((r: { customer_id: string }) => [a.id, b.id].includes(r.customer_id));
    expect(mine).toEqual(
      expect.arrayContaining([
        { customer_id: a.id, metric: 'api_calls', quantity: '31', events: 5 },
        { customer_id: b.id, metric: 'api_calls', quantity: '1000', events: 1 },
      ]),
    );
    const csv = await request(t.app)
      .get('/api/reports/usage')
      .query({ ...q, format: 'csv', customer_id: a.id })
      .set(admin);
    expect(csv.headers['content-type']).toMatch(/^text\/csv/);
    expect(csv.text).toBe(`customer_id,metric,quantity,events\n${a.id},api_calls,31,5\n`);
    const byDay = await request(t.app)
      .get('/api/reports/usage')
      .query({ ...q, group_by: 'day', customer_id: b.id })
      .set(admin);
    expect(byDay.body.rows).toEqual([{ day: day(2, 0).slice(0, 10), metric: 'api_calls', quantity: '1000', events: 1 }]);
  });

  test('when no period is given, then it is the current month', async () => {
    const res = await request(t.app).get('/api/usage').set('X-API-Key', b.apiKey);
    const now = new Date();
    expect(res.body.from).toBe(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)).toISOString());
    expect(res.body.to).toBe(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1)).toISOString());
  });

  test.each([
    [{ from: 'last week' }],
    [{ from: '2026-11-10', to: '2026-11-01' }],
    [{ from: '2024-01-01', to: '2026-01-01' }],
    [{ group_by: 'hour' }],
    [{ customer_id: 'x' }],
  ])('when the query is %j, then 422', async (query) => {
    expectError(await request(t.app).get('/api/usage').query(query).set('X-API-Key', a.apiKey), 422, 'VALIDATION_FAILED');
  });

  test('when daily totals are compared with the raw events, then they agree', async () => {
    const { rows: mismatches } = await t.db.raw(
      `
      select d.customer_id, d.metric, d.day
        from (select customer_id, metric, day, sum(quantity) as quantity, sum(events) as events
                from usage_daily where customer_id = any(:ids::uuid[]) group by 1, 2, 3) d
      full join (select customer_id, metric, (occurred_at at time zone 'UTC')::date as day, sum(quantity) q, count(*) n
                   from usage_events where customer_id = any(:ids::uuid[]) group by 1, 2, 3) e using (customer_id, metric, day)
      where e.q is distinct from d.quantity or e.n is distinct from d.events`,
      { ids: `{${created.join(',')}}` },
    );
    expect(created.length).toBeGreaterThan(10);
    expect(mismatches).toEqual([]);
  });
});
