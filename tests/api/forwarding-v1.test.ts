/**
 * The forwarder in v1 mode (one meter event per call) against the real stripe-node client and a
 * fake Stripe server: what Stripe receives is compared with what the database says. The stream
 * mode (the default) is in forwarding-stream.test.ts.
 */
import request from 'supertest';
import { STRIPE_API_VERSION } from '../../src/stripe/stripe-client';
import { expectError } from '../helpers/envelope';
import { CreatedCustomer, createCustomer, createStripeCustomer, reportBatch } from '../helpers/factories';
import { FakeStripe, startFakeStripe } from '../helpers/fake-stripe';
import { createTestApp, TestApp } from '../helpers/test-app';
import { clearPendingForwarding, forwardingOf, forwardingOfOne } from '../helpers/forwarding-state';

let stripe: FakeStripe;
let t: TestApp;
let admin: Record<string, string>;

const stripeEnv = (fake: FakeStripe, extra: Record<string, string> = {}) => ({
  STRIPE_SECRET_KEY: 'sk_test_forwarder123',
  STRIPE_API_BASE: fake.url,
  STRIPE_TIMEOUT_MS: '400',
  USAGE_METRICS: 'api_calls,storage_gb',
  USAGE_METER_EVENTS: 'storage_gb:storage_gigabytes',
  FORWARDER_BACKOFF_BASE_MS: '40',
  FORWARDER_BACKOFF_MAX_MS: '200',
  FORWARDER_MAX_ATTEMPTS: '4',
  FORWARDER_MODE: 'v1',
  FORWARDER_BATCH_SIZE: '100',
  ...extra,
});

beforeAll(async () => {
  stripe = await startFakeStripe();
  t = await createTestApp(stripeEnv(stripe));
  admin = { Authorization: `Bearer ${t.adminToken}` };
});
afterAll(async () => {
  await t.close();
  await stripe.close();
});
beforeEach(async () => {
  stripe.clearFailures();
  // Only this file makes pending events: start each test with an empty queue.
  await clearPendingForwarding(t.db);
});

const stripeCustomer = () => createStripeCustomer(t);
const report = (c: CreatedCustomer, n: number, metric = 'api_calls') => reportBatch(t, c, n, metric, 'f');

const sentFor = (ids: string[]) => stripe.meterEvents().filter((r) => ids.includes(String((r.body as { identifier?: string }).identifier)));
const states = async (ids: string[]) => Object.fromEntries((await forwardingOf(t.db, ids)).map((r) => [r.id, r.state]));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('when events are pending, then each is sent once as a meter event identified by our event id', async () => {
  const c = await stripeCustomer();
  const ids = await report(c, 3);
  const [storage] = await report(c, 1, 'storage_gb');
  expect(Object.values(await states([...ids, storage!]))).toEqual(['pending', 'pending', 'pending', 'pending']);

  const summary = await t.c.forwarder.runOnce();
  expect(summary).toMatchObject({ claimed: 4, sent: 4, failed: 0 });
  const sent = sentFor([...ids, storage!]);
  expect(sent).toHaveLength(4);
  const first = sent.find((r) => (r.body as { identifier: string }).identifier === ids[0])!;
  const row = (await forwardingOfOne(t.db, ids[0]))!;
  expect(first.body).toEqual({
    event_name: 'api_calls',
    identifier: ids[0],
    timestamp: String(Math.floor(row.occurred_at.getTime() / 1000)),
    payload: { stripe_customer_id: c.stripeId, value: '1.5' },
  });
  expect(first.idempotencyKey).toBe(`meter-event-${ids[0]}`);
  expect(first.stripeVersion).toBe(STRIPE_API_VERSION);
  expect(first.authorization).toBe('Bearer sk_test_forwarder123');
  expect(sent.find((r) => (r.body as { identifier: string }).identifier === storage)!.body).toMatchObject({ event_name: 'storage_gigabytes' });

  expect(Object.values(await states([...ids, storage!]))).toEqual(['sent', 'sent', 'sent', 'sent']);
  expect((await t.c.forwarder.runOnce()).claimed).toBe(0);
  expect(sentFor(ids)).toHaveLength(3);
});

test('when Stripe answers 500 twice, then the event is retried with growing backoff and counted once', async () => {
  const c = await stripeCustomer();
  const [id] = await report(c, 1);
  stripe.failNext(/meter_events/, 2, { status: 500 });

  expect(await t.c.forwarder.runOnce()).toMatchObject({ claimed: 1, retried: 1 });
  let row = (await forwardingOfOne(t.db, id))!;
  expect(row).toMatchObject({ state: 'pending', attempts: 1 });
  expect(row.last_error).toMatch(/500/);
  expect(row.next_attempt_at!.getTime()).toBeGreaterThan(Date.now() - 50);

  await sleep(120);
  expect(await t.c.forwarder.runOnce()).toMatchObject({ claimed: 1, retried: 1 });
  row = (await forwardingOfOne(t.db, id))!;
  expect(row.attempts).toBe(2);
  await sleep(250);
  expect(await t.c.forwarder.runOnce()).toMatchObject({ claimed: 1, sent: 1 });
  expect(await forwardingOfOne(t.db, id)).toMatchObject({ state: 'sent', attempts: 3, last_error: null });
  const tries = sentFor([id!]);
  expect(tries).toHaveLength(3);
  expect(new Set(tries.map((r) => r.idempotencyKey)).size).toBe(1); // the same idempotency key every time
});

test('when backoff is computed, then it doubles per attempt up to the cap, with jitter in the upper half', () => {
  const f = t.c.forwarder;
  for (let i = 0; i < 50; i++) {
    const [one, two, three, many] = [f.backoffMs(1), f.backoffMs(2), f.backoffMs(3), f.backoffMs(30)];
    expect(one).toBeGreaterThanOrEqual(20);
    expect(one).toBeLessThanOrEqual(40);
    expect(two).toBeGreaterThanOrEqual(40);
    expect(two).toBeLessThanOrEqual(80);
    expect(three).toBeGreaterThanOrEqual(80);
    expect(three).toBeLessThanOrEqual(160);
    expect(many).toBeGreaterThanOrEqual(100);
    expect(many).toBeLessThanOrEqual(200);
  }
});

test('when Stripe stalls past the timeout, then the event is retried and then sent', async () => {
  const c = await stripeCustomer();
  const [id] = await report(c, 1);
  stripe.failNext(/meter_events/, 1, 'stall');
  expect(await t.c.forwarder.runOnce()).toMatchObject({ claimed: 1, retried: 1 });
  expect((await forwardingOfOne(t.db, id))!.last_error).toMatch(/timed? ?out|aborted|connection/i);
  await sleep(150);
  expect(await t.c.forwarder.runOnce()).toMatchObject({ sent: 1 });
  expect((await forwardingOfOne(t.db, id))!.state).toBe('sent');
});

test('when Stripe refuses an event (4xx), then it is failed at once, visible to admins, and an admin can retry it', async () => {
  const c = await stripeCustomer();
  const [id] = await report(c, 1);
  stripe.failNext(/meter_events/, 1, { status: 400, type: 'invalid_request_error', message: 'No such meter event name' });
  expect(await t.c.forwarder.runOnce()).toMatchObject({ failed: 1 });
  expect(await forwardingOfOne(t.db, id)).toMatchObject({ state: 'failed', attempts: 1 });

  const status = await request(t.app).get('/api/reports/forwarding').set(admin);
  expect(status.status).toBe(200);
  expect(status.body.stripe_enabled).toBe(true);
  expect(status.body.failed).toBeGreaterThanOrEqual(1);
  expect(status.body.recent_failures.find((f: { id: string }) => f.id === id)).toMatchObject({
    customer_id: c.id,
    attempts: 1,
    last_error: expect.stringMatching(/No such meter/),
  });

  const retry = await request(t.app)
    .post('/api/reports/forwarding/retry')
    .set(admin)
    .send({ event_ids: [id] });
  expect(retry.body).toEqual({ requeued: 1, event_ids: [id] });
  expect(await t.c.forwarder.runOnce()).toMatchObject({ sent: 1 });
  expect(await forwardingOfOne(t.db, id)).toMatchObject({ state: 'sent' });
  const audit = await t.db('audit_log').where({ request_id: retry.headers['x-request-id'] });
  expect(audit).toEqual([expect.objectContaining({ action: 'usage.forwarding_retry', outcome: 'success' })]);
});

test('when every attempt fails, then the event is parked as failed after the bounded number of tries', async () => {
  const c = await stripeCustomer();
  const [id] = await report(c, 1);
  stripe.failAlways(/meter_events/, { status: 503 });
  for (let i = 0; i < 4; i++) {
    await t.c.forwarder.runOnce();
    await sleep(220);
  }
  expect(await forwardingOfOne(t.db, id)).toMatchObject({ state: 'failed', attempts: 4 });
  expect(sentFor([id!])).toHaveLength(4);
});

test('when two workers run at once, then no event is sent twice', async () => {
  const c = await stripeCustomer();
  const ids = [...(await report(c, 200)), ...(await report(c, 200))];
  const other = await createTestApp(stripeEnv(stripe, { FORWARDER_BATCH_SIZE: '25' }));
  try {
    const loop = async (app: TestApp) => {
      let sent = 0;
      for (let s = await app.c.forwarder.runOnce(); s.claimed > 0; s = await app.c.forwarder.runOnce()) sent += s.sent;
      return sent;
    };
    const [one, two] = await Promise.all([loop(t), loop(other)]);
    expect(one + two).toBe(400);
    expect(one).toBeGreaterThan(0);
    expect(two).toBeGreaterThan(0);
  } finally {
    await other.close();
  }
  // stripe-node may resend a slow request (same idempotency key, replayed by Stripe): one send each.
  const sends = new Map<string, Set<string | undefined>>();
  for (const r of sentFor(ids)) {
    const identifier = (r.body as { identifier: string }).identifier;
    sends.set(identifier, (sends.get(identifier) ?? new Set()).add(r.idempotencyKey));
  }
  expect(sends.size).toBe(400);
  expect([...sends.values()].every((keys) => keys.size === 1)).toBe(true);
  expect(new Set(Object.values(await states(ids)))).toEqual(new Set(['sent']));
});

test('when the customer has no Stripe customer, then its events are kept as local, never dropped', async () => {
  const c = await createCustomer(t);
  // As if Stripe had been down when the customer was created: not linked yet.
  await t.db('customers').where({ id: c.id }).update({ stripe_customer_id: null });
  const ids = await report(c, 2);
  expect(await t.c.forwarder.runOnce()).toMatchObject({ claimed: 2, local: 2, sent: 0 });
  expect(Object.values(await states(ids))).toEqual(['local', 'local']);
  expect(sentFor(ids)).toHaveLength(0);
});

test('when the forwarder stops during a batch, then it finishes the send under way and gives back the rest', async () => {
  // The stalled send is retried later (a minute): only the four given back are due right away.
  const slow = await createTestApp(
    stripeEnv(stripe, { FORWARDER_CONCURRENCY: '1', STRIPE_TIMEOUT_MS: '300', FORWARDER_BACKOFF_BASE_MS: '60000', FORWARDER_BACKOFF_MAX_MS: '60000' }),
  );
  try {
    const c = await stripeCustomer();
    const ids = await report(c, 5);
    stripe.failNext(/meter_events/, 1, 'stall');
    const run = slow.c.forwarder.runOnce();
    await sleep(100);
    await slow.c.forwarder.stop();
    expect(await run).toMatchObject({ claimed: 5, retried: 1, released: 4 });
    const rows = await forwardingOf(t.db, ids);
    expect(rows.filter((r) => r.attempts === 0 && r.state === 'pending')).toHaveLength(4);
    expect(rows.every((r) => r.state === 'pending')).toBe(true);
    expect(await t.c.forwarder.runOnce()).toMatchObject({ claimed: 4, sent: 4 });
  } finally {
    await slow.close();
  }
});

test('when Stripe is off, then events are stored as local and the forwarder does nothing', async () => {
  const off = await createTestApp({});
  try {
    const c = await createCustomer(off);
    const res = await request(off.app).post('/api/usage').set('X-API-Key', c.apiKey).send({ metric: 'api_calls', quantity: 1, idempotency_key: 'off-1' });
    expect(res.status).toBe(201);
    expect((await forwardingOfOne(off.db, res.body.event.id))!.state).toBe('local');
    expect(await off.c.forwarder.runOnce()).toMatchObject({ claimed: 0 });
    const status = await request(off.app)
      .get('/api/reports/forwarding')
      .set({ Authorization: `Bearer ${off.adminToken}` });
    expect(status.body.stripe_enabled).toBe(false);
  } finally {
    await off.close();
  }
});

test('when the retry body is bad, then 422', async () => {
  expectError(
    await request(t.app)
      .post('/api/reports/forwarding/retry')
      .set(admin)
      .send({ event_ids: ['nope'] }),
    422,
    'VALIDATION_FAILED',
  );
  expectError(await request(t.app).post('/api/reports/forwarding/retry').set(admin).send({ event_ids: [] }), 422, 'VALIDATION_FAILED');
});
