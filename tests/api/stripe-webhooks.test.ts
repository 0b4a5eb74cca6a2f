/**
 * Webhooks signed with stripe-node's own test helper, delivered in order, twice, at once, late
 * and forged, against a fake Stripe that holds the subscriptions' current state.
 */
import { randomBytes } from 'node:crypto';
import Stripe from 'stripe';
import request from 'supertest';
import { expectError } from '../helpers/envelope';
import { createCustomer, createPlan, subscribe } from '../helpers/factories';
import type { FakeStripe } from '../helpers/fake-stripe';
import { deliverEvent, startStripeApp, WEBHOOK_TEST_SECRET as SECRET, type StripeApp } from '../helpers/stripe-app';
import { createTestApp, TestApp } from '../helpers/test-app';

let app: StripeApp;
let stripe: FakeStripe;
let t: TestApp;
let admin: Record<string, string>;

beforeAll(async () => {
  ({ stripe, t, admin } = app = await startStripeApp({ STRIPE_TIMEOUT_MS: '500' }));
});
afterAll(() => app.close());
beforeEach(() => stripe.clearFailures());

let clock = Math.floor(Date.now() / 1000);
/** Events in Stripe's shape, built (and served back) by the fake. */
const event = (type: string, object: unknown, created = ++clock) => stripe.event(type, object as Record<string, unknown>, created);

const deliver = (evt: object, opts: Parameters<typeof deliverEvent>[2] = {}) => deliverEvent(t.app, evt, opts);

const stripePlan = () => createPlan(t, { stripe_price_id: `price_${randomBytes(5).toString('hex')}` });
const local = (id: string) => t.db('subscriptions').where({ id }).first();
const eventRows = (id: string) => t.db('stripe_events').where({ id });
const auditFor = (id: string) => t.db('audit_log').where({ target_id: id, target_type: 'stripe_event' });

describe('signatures', () => {
  test('when the signature is valid, then the event is recorded as processed', async () => {
    const e = event('ping.unknown_type', { id: 'obj_1' });
    const res = await deliver(e);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ received: true, event_id: e.id, type: e.type, result: 'ignored' });
    expect((await eventRows(e.id))[0]!.processed_at).not.toBeNull();
  });

  test.each([
    ['signed with another secret', { secret: 'whsec_someone_else' }],
    ['with a tampered body', { body: JSON.stringify({ tampered: true }) }],
    ['without a signature header', { signature: null }],
    ['with a garbage signature', { signature: 't=1,v1=abc' }],
    ['with a stale timestamp', { timestamp: Math.floor(Date.now() / 1000) - 3600 }],
  ])('when an event arrives %s, then 400 and nothing is written', async (_label, opts) => {
    const s = await subscribe(t, { plan: await stripePlan() });
    const e = event('customer.subscription.updated', stripe.subscriptions.get(s.body.stripe_subscription_id));
    const before = await local(s.id);
    expectError(await deliver(e, opts), 400, 'INVALID_SIGNATURE');
    expect(await eventRows(e.id)).toEqual([]);
    expect(await auditFor(e.id)).toEqual([]);
    expect(await local(s.id)).toEqual(before);
  });

  test('when the body was parsed and re-serialised before checking, then the signature no longer matches', async () => {
    const e = event('customer.subscription.updated', { id: 'sub_x' });
    const payload = JSON.stringify(e);
    const header = Stripe.webhooks.generateTestHeaderString({ payload, secret: SECRET });
    const reserialised = JSON.stringify(JSON.parse(payload), null, 2);
    const res = await request(t.app).post('/api/webhooks/stripe').set('Content-Type', 'application/json').set('Stripe-Signature', header).send(reserialised);
    expectError(res, 400, 'INVALID_SIGNATURE');
    await expect(t.c.webhooks.handle(JSON.parse(payload), header, { actor: 'stripe', actorId: null, ip: null, requestId: null })).rejects.toMatchObject({
      code: 'INVALID_SIGNATURE',
    });
    expect(await eventRows(e.id)).toEqual([]);
  });
});

describe('each event applied once', () => {
  test('when one event is delivered twice, and then ten times at once, then it has one effect', async () => {
    const s = await subscribe(t, { plan: await stripePlan() });
    stripe.setSubscription(s.body.stripe_subscription_id, { status: 'past_due' });
    const e = event('invoice.payment_failed', stripe.invoice(s.body.stripe_subscription_id, 'open'));
    const first = await deliver(e);
    const second = await deliver(e);
    expect([first.body.result, second.body.result]).toEqual(['processed', 'duplicate']);
    const many = await Promise.all(Array.from({ length: 10 }, () => deliver(e)));
    expect(many.every((r) => r.status === 200 && r.body.result === 'duplicate')).toBe(true);
    expect(await eventRows(e.id)).toHaveLength(1);
    expect(await auditFor(e.id)).toHaveLength(1);
    expect((await local(s.id))!.status).toBe('past_due');
  });

  test('when a new event is delivered ten times at once, then exactly one delivery applies it', async () => {
    const s = await subscribe(t, { plan: await stripePlan() });
    stripe.setSubscription(s.body.stripe_subscription_id, { cancel_at_period_end: true });
    const e = event('customer.subscription.updated', stripe.subscriptions.get(s.body.stripe_subscription_id));
    const results = await Promise.all(Array.from({ length: 10 }, () => deliver(e)));
    expect(results.map((r) => r.body.result).sort()).toEqual(['processed', ...Array(9).fill('duplicate')].sort());
    expect(await auditFor(e.id)).toHaveLength(1);
    expect((await local(s.id))!.cancel_at_period_end).toBe(true);
  });
});

describe('out of order', () => {
  test('when an older updated event arrives after a newer one, then the newer state stays', async () => {
    const s = await subscribe(t, { plan: await stripePlan() });
    const subId = s.body.stripe_subscription_id;
    const older = event('customer.subscription.updated', { ...stripe.subscriptions.get(subId), status: 'active' }, clock + 1);
    stripe.setSubscription(subId, { status: 'past_due' });
    const newer = event('customer.subscription.updated', { ...stripe.subscriptions.get(subId) }, clock + 2);
    clock += 2;
    await deliver(newer).expect(200);
    expect((await local(s.id))!.status).toBe('past_due');
    await deliver(older).expect(200);
    expect((await local(s.id))!.status).toBe('past_due');
  });

  test('when updated arrives before created for a subscription made in Stripe, then the row is made once with the current state', async () => {
    const c = await createCustomer(t);
    const plan = await stripePlan();
    const price = (await t.db('plans').where({ code: plan }).first())!.stripe_price_id!;
    const stripeCustomer = (await t.db('customers').where({ id: c.id }).first())!.stripe_customer_id!;
    const created = await new Stripe('sk_test_webhooks', { host: '127.0.0.1', port: Number(new URL(stripe.url).port), protocol: 'http' }).subscriptions.create({
      customer: stripeCustomer,
      items: [{ price }],
    });
    stripe.setSubscription(created.id, { status: 'past_due' });
    const createdEvt = event('customer.subscription.created', { ...created, status: 'active' });
    const updatedEvt = event('customer.subscription.updated', { ...stripe.subscriptions.get(created.id) });
    await deliver(updatedEvt).expect(200);
    await deliver(createdEvt).expect(200);
    const rows = await t.db('subscriptions').where({ stripe_subscription_id: created.id });
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ customer_id: c.id, status: 'past_due' });
    expect(rows[0]!.plan_id).toBe((await t.db('plans').where({ code: plan }).first())!.id);
  });
});

test('when a subscription goes through its whole life by webhooks, then the local state follows each step', async () => {
  const s = await subscribe(t, { plan: await stripePlan(), body: { trial_days: 7 } });
  const subId = s.body.stripe_subscription_id;
  expect((await local(s.id))!.status).toBe('trialing');

  const steps: [string, object, Partial<Record<string, unknown>>, string][] = [
    ['customer.subscription.updated', { status: 'active', trial_end: null }, {}, 'active'],
    ['invoice.payment_failed', { status: 'past_due' }, stripe.invoice(subId, 'open'), 'past_due'],
    ['invoice.paid', { status: 'active' }, stripe.invoice(subId, 'paid'), 'active'],
    ['customer.subscription.deleted', { status: 'canceled', canceled_at: Math.floor(Date.now() / 1000) }, {}, 'canceled'],
  ];
  for (const [type, change, object, expected] of steps) {
    const sub = stripe.setSubscription(subId, change);
    const res = await deliver(event(type, Object.keys(object).length ? object : { ...sub }));
    expect([type, res.status, res.body.result]).toEqual([type, 200, 'processed']);
    expect([type, (await local(s.id))!.status]).toEqual([type, expected]);
  }
  expect((await local(s.id))!.canceled_at).not.toBeNull();
  const mine = await request(t.app).get('/api/subscriptions').set('X-API-Key', s.customer.apiKey);
  expect(mine.body.data[0]).toMatchObject({ id: s.id, status: 'canceled' });
});

test('when applying an event fails, then 500 so Stripe retries, the failure is visible to admins, and a redelivery applies it', async () => {
  const s = await subscribe(t, { plan: await stripePlan() });
  const subId = s.body.stripe_subscription_id;
  stripe.setSubscription(subId, { status: 'unpaid' });
  const e = event('customer.subscription.updated', { ...stripe.subscriptions.get(subId) });
  stripe.failNext(new RegExp(`^/v1/subscriptions/${subId}$`), 3, { status: 500 });
  expectError(await deliver(e), 500, 'INTERNAL_ERROR');
  expect((await local(s.id))!.status).toBe('active');
  const [row] = await eventRows(e.id);
  expect(row).toMatchObject({ processed_at: null, attempts: 1 });
  expect(row!.last_error).toMatch(/500/);
  const report = await request(t.app).get('/api/reports/webhooks').set(admin);
  expect(report.body.failing_events.map((f: { id: string }) => f.id)).toContain(e.id);

  const again = await deliver(e);
  expect(again.body.result).toBe('processed');
  expect((await local(s.id))!.status).toBe('unpaid');
  expect((await eventRows(e.id))[0]).toMatchObject({ attempts: 2, last_error: null });
});

test('when a Stripe customer is deleted, then our customer is unlinked and keeps its data', async () => {
  const c = await createCustomer(t);
  const stripeId = (await t.db('customers').where({ id: c.id }).first())!.stripe_customer_id;
  await deliver(event('customer.deleted', { id: stripeId, object: 'customer', deleted: true })).expect(200);
  expect(await t.db('customers').where({ id: c.id }).first()).toMatchObject({ stripe_customer_id: null, status: 'active' });
});

/** stripe-node against the fake, for objects other integrations in the same Stripe account make. */
const stripeApi = () => new Stripe('sk_test_webhooks', { host: '127.0.0.1', port: Number(new URL(stripe.url).port), protocol: 'http' });
const rereads = (subId: string) => stripe.requests.filter((r) => r.method === 'GET' && r.path === `/v1/subscriptions/${subId}`).length;
const FOREIGN = { customer_id: '10234', subscription_id: 'SUB-2291' };

describe('objects of other integrations in the same Stripe account', () => {
  async function expectIgnored(e: { id: string; type: string }, reason: RegExp) {
    const res = await deliver(e);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ received: true, event_id: e.id, type: e.type, result: 'ignored' });
    const [row] = await eventRows(e.id);
    expect(row).toMatchObject({ attempts: 1, last_error: null });
    expect(row!.processed_at).not.toBeNull();
    const audit = await auditFor(e.id);
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ action: `stripe.${e.type}`, outcome: 'success' });
    expect(audit[0]!.details.ignored).toMatch(reason);
  }

  test('when a subscription of an unknown Stripe customer carries another app’s ids in its metadata, then its events are ignored, recorded, and nothing is written', async () => {
    const api = stripeApi();
    const theirs = await api.customers.create({ email: 'someone@other-app.example' });
    const plan = await stripePlan();
    const price = (await t.db('plans').where({ code: plan }).first())!.stripe_price_id!;
    const sub = await api.subscriptions.create({ customer: theirs.id, items: [{ price }], metadata: FOREIGN });

    for (const e of [
      event('customer.subscription.created', { ...stripe.subscriptions.get(sub.id) }),
      event('customer.subscription.updated', { ...stripe.subscriptions.get(sub.id) }),
      event('invoice.paid', stripe.invoice(sub.id, 'paid')),
      event('invoice.payment_failed', stripe.invoice(sub.id, 'open')),
    ]) {
      const before = rereads(sub.id);
      await expectIgnored(e, /no customer of ours/);
      expect(rereads(sub.id)).toBe(before + 1);
    }
    expect(await t.db('subscriptions').where({ stripe_subscription_id: sub.id })).toEqual([]);
  });

  // Another app's subscription on one of our Stripe customers and our price is adopted whatever its
  // metadata holds: tests/api/stripe-adoption.test.ts.

  test('when a subscription belongs to a Stripe customer we do not know, then its events are ignored', async () => {
    const api = stripeApi();
    const theirs = await api.customers.create({ email: 'another@other-app.example' });
    const sub = await api.subscriptions.create({ customer: theirs.id, items: [{ price: 'price_other_app' }] });
    await expectIgnored(event('customer.subscription.updated', { ...stripe.subscriptions.get(sub.id) }), /no customer of ours/);
    await expectIgnored(event('invoice.payment_failed', stripe.invoice(sub.id, 'open')), /no customer of ours/);
    expect(await t.db('subscriptions').where({ stripe_subscription_id: sub.id })).toEqual([]);
  });

  test('when a Stripe customer we never linked is deleted, then the event is ignored and no customer changes', async () => {
    const theirs = await stripeApi().customers.create({ email: 'gone@other-app.example' });
    const linked = await t.db('customers').whereNotNull('stripe_customer_id').count<{ n: string }[]>({ n: '*' });
    await expectIgnored(event('customer.deleted', { id: theirs.id, object: 'customer', deleted: true }), /no customer of ours/);
    expect(await t.db('customers').whereNotNull('stripe_customer_id').count({ n: '*' })).toEqual(linked);
  });
});

describe('malformed events', () => {
  const webhookReport = async () => (await request(t.app).get('/api/reports/webhooks').set(admin)).body;

  test.each([
    ['no data', (e: Record<string, unknown>) => delete e.data, /data/],
    ['no data.object', (e: Record<string, unknown>) => void (e.data = {}), /data\.object/],
    ['a data.object that is not an object', (e: Record<string, unknown>) => void (e.data = { object: 'sub_1' }), /data\.object/],
    ['no type', (e: Record<string, unknown>) => delete e.type, /type/],
    ['a created that is not a number', (e: Record<string, unknown>) => void (e.created = 'yesterday'), /created/],
  ])('when a validly signed event has %s, then 400 BAD_REQUEST, and it is recorded as failing for admins', async (_label, spoil, reason) => {
    const e = event('customer.subscription.updated', { id: 'sub_whatever' }) as unknown as Record<string, unknown>;
    spoil(e);
    expectError(await deliver(e), 400, 'BAD_REQUEST');
    const [row] = await eventRows(e.id as string);
    expect(row).toMatchObject({ processed_at: null, attempts: 1 });
    expect(row!.last_error).toMatch(/^BAD_REQUEST: malformed event/);
    expect(row!.last_error).toMatch(reason);
    const report = await webhookReport();
    expect(report.failing_events.find((f: { id: string }) => f.id === e.id)).toMatchObject({ last_error: row!.last_error, attempts: 1 });

    expectError(await deliver(e), 400, 'BAD_REQUEST');
    expect((await eventRows(e.id as string))[0]).toMatchObject({ attempts: 2, processed_at: null });
    expect(await auditFor(e.id as string)).toEqual([]);
  });

  test.each([
    ['no id', (e: Record<string, unknown>) => delete e.id],
    ['an id that is not a string', (e: Record<string, unknown>) => void (e.id = 12345)],
  ])('when a validly signed event has %s, then 400 BAD_REQUEST and it is logged, since it cannot be recorded by id', async (_label, spoil) => {
    const e = event('customer.subscription.updated', { id: 'sub_whatever' }) as unknown as Record<string, unknown>;
    const count = await t.db('stripe_events').count<{ n: string }[]>({ n: '*' });
    const logsBefore = t.logs.length;
    spoil(e);
    expectError(await deliver(e), 400, 'BAD_REQUEST');
    expect(await t.db('stripe_events').count({ n: '*' })).toEqual(count);
    expect(t.logs.slice(logsBefore).some((l) => /malformed/i.test(l) && l.includes('"id"'))).toBe(true);
  });

  test.each([['null'], ['[]'], ['"evt_1"']])('when a validly signed body is the JSON %s, then 400 BAD_REQUEST and nothing is written', async (body) => {
    const count = await t.db('stripe_events').count<{ n: string }[]>({ n: '*' });
    const header = Stripe.webhooks.generateTestHeaderString({ payload: body, secret: SECRET });
    const res = await request(t.app).post('/api/webhooks/stripe').set('Content-Type', 'application/json').set('Stripe-Signature', header).send(body);
    expectError(res, 400, 'BAD_REQUEST');
    expect(await t.db('stripe_events').count({ n: '*' })).toEqual(count);
  });
});

test('when applying fails in the database, then last_error holds a stable code and no SQL, and the detail goes to the log with the event id', async () => {
  const s = await subscribe(t, { plan: await stripePlan() });
  const subId = s.body.stripe_subscription_id;
  // A status Stripe may add one day that our check constraint does not know: the upsert fails.
  stripe.setSubscription(subId, { status: 'pending_renewal' });
  const e = event('customer.subscription.updated', { ...stripe.subscriptions.get(subId) });
  const logsBefore = t.logs.length;
  const res = await deliver(e);
  expectError(res, 500, 'INTERNAL_ERROR');
  expect(JSON.stringify(res.body)).not.toMatch(/insert|subscriptions_status_check/i);
  const [row] = await eventRows(e.id);
  expect(row).toMatchObject({ processed_at: null, attempts: 1, last_error: 'INTERNAL_ERROR: the event could not be applied' });
  const report = await request(t.app).get('/api/reports/webhooks').set(admin);
  const listed = report.body.failing_events.find((f: { id: string }) => f.id === e.id);
  expect(listed.last_error).toBe('INTERNAL_ERROR: the event could not be applied');
  const logged = t.logs.slice(logsBefore).filter((l) => l.includes(e.id));
  expect(logged.some((l) => /subscriptions_status_check/.test(l))).toBe(true);
  expect((await local(s.id))!.status).toBe('active');
  stripe.setSubscription(subId, { status: 'active' });
});

describe('signature timestamps', () => {
  test('when the signature is dated beyond the tolerance in the future, then 400 and nothing is written', async () => {
    const s = await subscribe(t, { plan: await stripePlan() });
    stripe.setSubscription(s.body.stripe_subscription_id, { status: 'past_due' });
    const e = event('customer.subscription.updated', stripe.subscriptions.get(s.body.stripe_subscription_id));
    const reads = rereads(s.body.stripe_subscription_id);
    expectError(await deliver(e, { timestamp: Math.floor(Date.now() / 1000) + 3600 }), 400, 'INVALID_SIGNATURE');
    expectError(await deliver(e, { timestamp: Math.floor(Date.now() / 1000) + 301 + 5 }), 400, 'INVALID_SIGNATURE');
    expect(await eventRows(e.id)).toEqual([]);
    expect(await auditFor(e.id)).toEqual([]);
    expect(rereads(s.body.stripe_subscription_id)).toBe(reads);
    expect((await local(s.id))!.status).toBe('active');
  });

  test('when the signature is dated a little in the future (clock skew within the tolerance), then it is accepted', async () => {
    const e = event('ping.unknown_type', { id: 'obj_skew' });
    const res = await deliver(e, { timestamp: Math.floor(Date.now() / 1000) + 60 });
    expect(res.status).toBe(200);
    expect(res.body.result).toBe('ignored');
  });
});

describe('body size', () => {
  /** A subscription update as Stripe sends it, padded to about `bytes`. */
  function bigEvent(bytes: number) {
    const items = Array.from({ length: 20 }, (_, i) => ({
      id: `si_${i}`,
      object: 'subscription_item',
      price: { id: `price_${i}`, object: 'price', metadata: {} },
    }));
    const e = event('ping.big_update', { id: 'sub_big', object: 'subscription', items: { object: 'list', data: items } });
    const size = JSON.stringify(e).length;
    Object.assign(e.data, { previous_attributes: { description: 'x'.repeat(Math.max(0, bytes - size - 60)) } });
    return e;
  }

  test('when a signed event of 200 kB arrives, then it is accepted', async () => {
    const e = bigEvent(200_000);
    expect(JSON.stringify(e).length).toBeGreaterThan(190_000);
    const res = await deliver(e);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ event_id: e.id, result: 'ignored' });
    expect((await eventRows(e.id))[0]!.processed_at).not.toBeNull();
  });

  test('when a signed event is over WEBHOOK_BODY_LIMIT, then 413 PAYLOAD_TOO_LARGE and nothing is written', async () => {
    const e = bigEvent(1_100_000);
    expectError(await deliver(e), 413, 'PAYLOAD_TOO_LARGE');
    expect(await eventRows(e.id)).toEqual([]);
  });

  test('when WEBHOOK_BODY_LIMIT is set, then the webhook route takes bodies up to it, and no more', async () => {
    const other = await createTestApp({ STRIPE_WEBHOOK_SECRET: SECRET, FORWARDER_ENABLED: 'false', WEBHOOK_BODY_LIMIT: '300kb', JSON_BODY_LIMIT: '100kb' });
    const send = (e: object) => {
      const payload = JSON.stringify(e);
      const header = Stripe.webhooks.generateTestHeaderString({ payload, secret: SECRET });
      return request(other.app).post('/api/webhooks/stripe').set('Content-Type', 'application/json').set('Stripe-Signature', header).send(payload);
    };
    try {
      const fits = bigEvent(200_000);
      expect((await send(fits)).body).toMatchObject({ event_id: fits.id, result: 'ignored' });
      const over = bigEvent(400_000);
      expectError(await send(over), 413, 'PAYLOAD_TOO_LARGE');
      expect(await eventRows(over.id)).toEqual([]);
    } finally {
      await other.close();
    }
  });
});
