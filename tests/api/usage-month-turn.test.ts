/**
 * Idempotency across monthly partitions: usage_events is partitioned by month of occurrence and a key
 * is unique per customer and month, so a retry must meet its first copy whatever month it arrives in.
 */
import request from 'supertest';
import { createIsolatedTestApp } from '../helpers/fresh-database';
import { createCustomer, type CreatedCustomer } from '../helpers/factories';
import { createTestApp, type TestApp } from '../helpers/test-app';

const TURN = Date.UTC(2031, 1, 1); // 2031-02-01T00:00:00Z
let clockA = TURN;
let clockB = TURN;
let iso: Awaited<ReturnType<typeof createIsolatedTestApp>>;
let a: TestApp;
let b: TestApp; // a second instance on the same database, with a clock of its own
let c: CreatedCustomer;

beforeAll(async () => {
  iso = await createIsolatedTestApp('month_turn', {}, { now: () => clockA });
  a = iso.t;
  b = await createTestApp({}, { databaseUrl: iso.url, now: () => clockB });
  // The months of the test, as the service's partition maintenance would have made them.
  const months: [string, string, string][] = [
    ['usage_events_2031_01', '2031-01-01', '2031-02-01'],
    ['usage_events_2031_02', '2031-02-01', '2031-03-01'],
  ];
  for (const [name, from, to] of months)
    await a.db.raw(`create table if not exists ?? partition of usage_events for values from ('${from}') to ('${to}')`, [name]);
  c = await createCustomer(a);
});
afterAll(async () => {
  await b.close();
  await iso.close();
});

const send = (t: TestApp, body: object) => request(t.app).post('/api/usage').set('X-API-Key', c.apiKey).send(body);
const rows = async (key: string) =>
  (
    await a.db.raw<{ rows: { partition: string; id: string }[] }>(
      `select tableoid::regclass::text as partition, id from usage_events where idempotency_key = ?`,
      [key],
    )
  ).rows;
const totalEvents = async () => Number((await a.db('usage_daily').where({ customer_id: c.id }).sum<{ s: string }[]>('events as s'))[0]!.s ?? 0);

test('when an event sent without occurred_at is retried after the month turned, then it is stored once, in the month it was first received', async () => {
  const key = 'turn-absent-1';
  clockA = TURN - 1000; // 2031-01-31T23:59:59Z
  const first = await send(a, { metric: 'api_calls', quantity: 1, idempotency_key: key });
  expect(first.status).toBe(201);
  clockA = TURN + 3 * 24 * 3600 * 1000; // three days later, in February
  const retry = await send(a, { metric: 'api_calls', quantity: 1, idempotency_key: key });
  expect(retry.status).toBe(200);
  expect(retry.body.event.id).toBe(first.body.event.id);
  expect(retry.body.event.occurred_at).toBe('2031-01-31T23:59:59.000Z');
  expect(await rows(key)).toEqual([{ partition: 'usage_events_2031_01', id: first.body.event.id }]);

  // Control: a new key at the same moment is a new event, in February.
  const fresh = await send(a, { metric: 'api_calls', quantity: 1, idempotency_key: 'turn-absent-2' });
  expect(fresh.status).toBe(201);
  expect((await rows('turn-absent-2'))[0]!.partition).toBe('usage_events_2031_02');
});

test('when the retry of an event sent without occurred_at has another body after the month turned, then 409, and nothing is stored', async () => {
  const key = 'turn-absent-conflict';
  clockA = TURN - 60_000;
  expect((await send(a, { metric: 'api_calls', quantity: 2, idempotency_key: key })).status).toBe(201);
  clockA = TURN + 60_000;
  const other = await send(a, { metric: 'api_calls', quantity: 3, idempotency_key: key });
  expect(other.status).toBe(409);
  expect(other.body.error.code).toBe('IDEMPOTENCY_CONFLICT');
  expect(await rows(key)).toHaveLength(1);
});

test('when an event with its occurred_at in January is first received in February and retried, then it is stored once, in January', async () => {
  const key = 'turn-given-1';
  clockA = TURN + 3600_000;
  const body = { metric: 'api_calls', quantity: 1, idempotency_key: key, occurred_at: '2031-01-31T23:00:00Z' };
  const first = await send(a, body);
  expect(first.status).toBe(201);
  clockA = TURN + 5 * 24 * 3600_000;
  const retry = await send(a, body);
  expect(retry.status).toBe(200);
  expect(retry.body.event.id).toBe(first.body.event.id);
  expect(await rows(key)).toEqual([{ partition: 'usage_events_2031_01', id: first.body.event.id }]);
});

test('when two instances receive the same events without occurred_at at the turn, one stamping January and one February, then each is stored once', async () => {
  clockA = TURN - 1; // 2031-01-31T23:59:59.999Z
  clockB = TURN + 1; // 2031-02-01T00:00:00.001Z
  const before = await totalEvents();
  const keys = Array.from({ length: 40 }, (_, i) => `turn-race-${i}`);
  const answers = await Promise.all(
    keys.flatMap((k) => [send(a, { metric: 'api_calls', quantity: 1, idempotency_key: k }), send(b, { metric: 'api_calls', quantity: 1, idempotency_key: k })]),
  );
  for (const res of answers) expect([200, 201]).toContain(res.status);
  // Each key: one 201 and one 200, the same id, one row.
  for (let i = 0; i < keys.length; i++) {
    const [x, y] = [answers[2 * i]!, answers[2 * i + 1]!];
    expect([x.status, y.status].sort()).toEqual([200, 201]);
    expect(x.body.event.id).toBe(y.body.event.id);
    expect(await rows(keys[i]!)).toHaveLength(1);
  }
  expect(await totalEvents()).toBe(before + keys.length);
});
