/**
 * GET /api/invoices/upcoming: Stripe's invoice preview through the real stripe-node client against
 * the fake (metered quantities from the meter events the forwarder sent), kept per customer for
 * UPCOMING_INVOICE_CACHE with one Stripe call for concurrent callers, Stripe failing, and the local
 * estimate from the plan's local_pricing and the daily totals when Stripe does not bill it.
 */
import { randomBytes } from 'node:crypto';
import Stripe from 'stripe';
import request from 'supertest';
import { STRIPE_API_VERSION, stripeHostOptions } from '../../src/stripe/stripe-client';
import { upcomingInvoiceResponse } from '../../src/modules/invoices/invoices-schemas';
import { expectError } from '../helpers/envelope';
import { createCustomer, createPlan, subscribe, type CreatedCustomer } from '../helpers/factories';
import { startFakeStripe, type FakeStripe } from '../helpers/fake-stripe';
import { createTestApp, type TestApp } from '../helpers/test-app';

let fake: FakeStripe;
let stripe: Stripe;
let t: TestApp;
let skewMs = 0;
let meterId: string;

beforeAll(async () => {
  fake = await startFakeStripe();
  stripe = new Stripe('sk_test_upcoming', { apiVersion: STRIPE_API_VERSION, ...stripeHostOptions(fake.url), maxNetworkRetries: 0 });
  t = await createTestApp(
    {
      STRIPE_SECRET_KEY: 'sk_test_upcoming',
      STRIPE_API_BASE: fake.url,
      STRIPE_TIMEOUT_MS: '300',
      FORWARDER_ENABLED: 'false',
      UPCOMING_INVOICE_CACHE: '30s',
    },
    { now: () => Date.now() + skewMs },
  );
  meterId = (await stripe.billing.meters.create({ display_name: 'API calls', event_name: 'api_calls', default_aggregation: { formula: 'sum' } })).id;
});
afterAll(async () => {
  await t.close();
  await fake.close();
});
beforeEach(() => {
  fake.clearFailures();
  skewMs = 0;
});

const upcoming = (app: TestApp, c: CreatedCustomer) => request(app.app).get('/api/invoices/upcoming').set('X-API-Key', c.apiKey);
const calls = () => fake.previewCalls().length;

/** A plan billed in Stripe: a base price (unit_amount) and a metered price for api_calls on the meter. */
async function stripePlan(base = 4900, perCall = '0.05') {
  const product = `prod_${randomBytes(4).toString('hex')}`;
  const basePrice = await stripe.prices.create({ currency: 'usd', unit_amount: base, recurring: { interval: 'month' }, product, nickname: 'Pro' });
  const metered = await stripe.prices.create({
    currency: 'usd',
    // stripe-node 23 types it as its Decimal; the API takes the decimal string.
    unit_amount_decimal: perCall as unknown as Stripe.PriceCreateParams['unit_amount_decimal'],
    recurring: { interval: 'month', usage_type: 'metered', meter: meterId },
    product,
    nickname: 'API calls',
  });
  const code = await createPlan(t, { stripe_price_id: basePrice.id, metered_prices: { api_calls: metered.id } });
  return { code, basePrice: basePrice.id, meteredPrice: metered.id };
}

async function report(app: TestApp, c: CreatedCustomer, metric: string, quantity: string) {
  const res = await request(app.app)
    .post('/api/usage')
    .set('X-API-Key', c.apiKey)
    .send({ metric, quantity, idempotency_key: `u-${randomBytes(6).toString('hex')}` });
  if (res.status !== 201) throw new Error(`usage: ${res.status} ${JSON.stringify(res.body)}`);
}

describe('Stripe on: the preview', () => {
  test('when usage was forwarded as meter events, then the answer is Stripe’s preview: each line, its metric from metered_prices, the amounts and the period', async () => {
    const p = await stripePlan();
    const s = await subscribe(t, { plan: p.code });
    await report(t, s.customer, 'api_calls', '1234');
    await report(t, s.customer, 'api_calls', '0.5');
    expect(await t.c.forwarder.runOnce()).toMatchObject({ sent: 2 });

    const res = await upcoming(t, s.customer);
    expect(res.status).toBe(200);
    expect(upcomingInvoiceResponse.safeParse(res.body).success).toBe(true);
    const item = fake.subscriptions.get(s.body.stripe_subscription_id)!.items.data[0]!;
    const period = { start: new Date(item.current_period_start * 1000).toISOString(), end: new Date(item.current_period_end * 1000).toISOString() };
    expect(res.body).toMatchObject({
      estimate: false,
      source: 'stripe',
      customer_id: s.customerId,
      subscription_id: s.id,
      currency: 'usd',
      period,
      // 4900 + round(1234.5 × 0.05 = 61.725)
      subtotal: 4962,
      tax: 0,
      total: 4962,
      amount_due: 4962,
    });
    expect(res.body.lines).toEqual([
      { description: '1 × Pro', quantity: 1, amount: 4900, price: p.basePrice, metric: null, period },
      { description: '1234.5 × API calls', quantity: 1234.5, amount: 62, price: p.meteredPrice, metric: 'api_calls', period },
    ]);
    expect(fake.previewCalls().at(-1)!.body).toMatchObject({ customer: expect.stringMatching(/^cus_/), subscription: s.body.stripe_subscription_id });
  });

  test('when meter events Stripe holds (sent by any means) change, then the next preview after the window shows them', async () => {
    const p = await stripePlan(1000, '2');
    const s = await subscribe(t, { plan: p.code });
    expect((await upcoming(t, s.customer)).body.total).toBe(1000);
    const stripeCustomer = (await t.db('customers').where({ id: s.customerId }).first())!.stripe_customer_id as string;
    fake.held.set(`held-${randomBytes(4).toString('hex')}`, {
      identifier: 'x',
      event_name: 'api_calls',
      payload: { stripe_customer_id: stripeCustomer, value: '7' },
      timestamp: new Date().toISOString(),
      via: 'v1',
    });
    skewMs = 31_000;
    const after = await upcoming(t, s.customer);
    expect(after.body.lines[1]).toMatchObject({ quantity: 7, amount: 14, metric: 'api_calls' });
    expect(after.body.total).toBe(1014);
  });
});

describe('Stripe on: the cache', () => {
  test('when asked again within UPCOMING_INVOICE_CACHE, then no Stripe call and the same answer; after the window, Stripe is asked again', async () => {
    const s = await subscribe(t, { plan: (await stripePlan()).code });
    const first = await upcoming(t, s.customer);
    const n = calls();
    const again = await upcoming(t, s.customer);
    expect(again.body).toEqual(first.body);
    expect(calls()).toBe(n);
    skewMs = 29_000;
    expect((await upcoming(t, s.customer)).body.computed_at).toBe(first.body.computed_at);
    expect(calls()).toBe(n);
    skewMs = 31_000;
    const later = await upcoming(t, s.customer);
    expect(calls()).toBe(n + 1);
    expect(later.body.computed_at).not.toBe(first.body.computed_at);
  });

  test('when the subscription moves to another plan, then the next call asks Stripe again and shows the new prices', async () => {
    const [one, two] = [await stripePlan(1000), await stripePlan(9900)];
    const s = await subscribe(t, { plan: one.code });
    expect((await upcoming(t, s.customer)).body.lines[0].price).toBe(one.basePrice);
    const n = calls();
    const moved = await request(t.app)
      .patch(`/api/customers/${s.customerId}/subscriptions/${s.id}`)
      .set('Authorization', `Bearer ${t.adminToken}`)
      .send({ plan: two.code });
    expect(moved.status).toBe(200);
    const after = await upcoming(t, s.customer);
    expect(calls()).toBe(n + 1);
    expect(after.body.lines.map((l: { price: string }) => l.price).sort()).toEqual([two.basePrice, two.meteredPrice].sort());
    expect(after.body.lines.find((l: { metric: string | null }) => l.metric === 'api_calls').price).toBe(two.meteredPrice);
  });

  test('when ten calls arrive at once, then Stripe is asked once and all ten get its answer', async () => {
    const s = await subscribe(t, { plan: (await stripePlan()).code });
    // Under STRIPE_TIMEOUT_MS (300): the calls overlap the one in flight.
    fake.setLatency(150, 150);
    const n = calls();
    const answers = await Promise.all(Array.from({ length: 10 }, () => upcoming(t, s.customer)));
    expect(answers.map((a) => a.status)).toEqual(Array(10).fill(200));
    expect(new Set(answers.map((a) => a.body.computed_at)).size).toBe(1);
    expect(calls()).toBe(n + 1);
  });

  test('when two customers ask, then each gets its own answer (the cache is per customer)', async () => {
    const [a, b] = [await subscribe(t, { plan: (await stripePlan(1000)).code }), await subscribe(t, { plan: (await stripePlan(2000)).code })];
    const [ra, rb] = [await upcoming(t, a.customer), await upcoming(t, b.customer)];
    expect([ra.body.customer_id, ra.body.total]).toEqual([a.customerId, 1000]);
    expect([rb.body.customer_id, rb.body.total]).toEqual([b.customerId, 2000]);
  });
});

describe('Stripe on: failures', () => {
  test.each([
    ['500', { status: 500 }],
    ['429', { status: 429, type: 'rate_limit_error' }],
    ['a timeout', 'stall' as const],
  ])(
    'when Stripe answers %s, then 503 with Retry-After (never a 500), nothing is kept, and once it recovers the next call succeeds',
    async (_label, failure) => {
      const s = await subscribe(t, { plan: (await stripePlan()).code });
      fake.failAlways(/create_preview/, failure);
      const res = await upcoming(t, s.customer);
      expectError(res, 503, 'SERVICE_UNAVAILABLE');
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
      fake.clearFailures();
      const n = calls();
      const ok = await upcoming(t, s.customer);
      expect(ok.status).toBe(200);
      expect(calls()).toBe(n + 1);
    },
  );

  test('when Stripe refuses the preview (a 400), then 502 BAD_GATEWAY; a later call succeeds (control)', async () => {
    const s = await subscribe(t, { plan: (await stripePlan()).code });
    fake.failNext(/create_preview/, 1, { status: 400, type: 'invalid_request_error' });
    expectError(await upcoming(t, s.customer), 502, 'BAD_GATEWAY');
    expect((await upcoming(t, s.customer)).status).toBe(200);
  });

  test('when Stripe has no upcoming invoice for the subscription (ended there), then 404 NOT_FOUND as for no subscription', async () => {
    const s = await subscribe(t, { plan: (await stripePlan()).code });
    fake.setSubscription(s.body.stripe_subscription_id, { status: 'canceled' });
    const res = await upcoming(t, s.customer);
    expectError(res, 404, 'NOT_FOUND');
    expect(res.body.error.message).toBe('no upcoming invoice: no current subscription');
  });
});

describe('no current subscription', () => {
  test('when the customer has none, then 404 NOT_FOUND; once subscribed, 200 (control)', async () => {
    const c = await createCustomer(t);
    const res = await upcoming(t, c);
    expectError(res, 404, 'NOT_FOUND');
    expect(res.body.error.message).toBe('no upcoming invoice: no current subscription');
    await subscribe(t, { customer: c, plan: (await stripePlan()).code });
    expect((await upcoming(t, c)).status).toBe(200);
  });

  test('when its only subscription was canceled, then 404', async () => {
    const s = await subscribe(t, { plan: (await stripePlan()).code });
    const cancel = await request(t.app)
      .delete(`/api/customers/${s.customerId}/subscriptions/${s.id}?immediately=true`)
      .set('Authorization', `Bearer ${t.adminToken}`);
    expect(cancel.status).toBe(200);
    expectError(await upcoming(t, s.customer), 404, 'NOT_FOUND');
  });
});

describe('the local estimate', () => {
  let off: TestApp;
  beforeAll(async () => {
    // The same database, Stripe off: its subscriptions are local ones.
    off = await createTestApp({ USAGE_METRICS: 'api_calls,storage_gb' });
  });
  afterAll(() => off.close());

  const pricing = { currency: 'usd', unit_amount: 4900, metered: { api_calls: '0.05', storage_gb: '100' } };

  test('when usage is reported, then each metered line is the period’s usage at its unit price, rounded half up exactly per line', async () => {
    const plan = await createPlan(off, { local_pricing: pricing, entitlements: { features: [], limits: { api_calls: 100_000 } } });
    const s = await subscribe(off, { plan });
    await report(off, s.customer, 'api_calls', '1234');
    await report(off, s.customer, 'api_calls', '0.5');
    // 1.005 × 100 is 100.49999999999999 in floating point; exactly 100.5, which rounds to 101.
    await report(off, s.customer, 'storage_gb', '1.005');

    const res = await upcoming(off, s.customer);
    expect(res.status).toBe(200);
    expect(upcomingInvoiceResponse.safeParse(res.body).success).toBe(true);
    const sub = (await off.db('subscriptions').where({ id: s.id }).first())!;
    const period = { start: sub.current_period_start!.toISOString(), end: sub.current_period_end!.toISOString() };
    expect(res.body).toMatchObject({
      estimate: true,
      source: 'local',
      customer_id: s.customerId,
      subscription_id: s.id,
      currency: 'usd',
      period,
      subtotal: 4900 + 62 + 101,
      tax: 0,
      total: 5063,
      amount_due: 5063,
    });
    expect(res.body.lines).toEqual([
      { description: 'Pro', quantity: 1, amount: 4900, price: null, metric: null, period },
      { description: 'api_calls', quantity: 1234.5, amount: 62, price: null, metric: 'api_calls', period },
      { description: 'storage_gb', quantity: 1.005, amount: 101, price: null, metric: 'storage_gb', period },
    ]);

    // Computed on each call: the next usage shows at once.
    await report(off, s.customer, 'api_calls', '10');
    expect((await upcoming(off, s.customer)).body.lines[1]).toMatchObject({ quantity: 1244.5, amount: 62 });
    await report(off, s.customer, 'api_calls', '0.1');
    // 1244.6 × 0.05 = 62.23
    expect((await upcoming(off, s.customer)).body.lines[1]).toMatchObject({ quantity: 1244.6, amount: 62 });
  });

  test('when nothing was used yet, then the metered lines are 0 and the total is the base price', async () => {
    const s = await subscribe(off, { plan: await createPlan(off, { local_pricing: pricing }) });
    const res = await upcoming(off, s.customer);
    expect(res.body.lines.map((l: { quantity: number; amount: number }) => [l.quantity, l.amount])).toEqual([
      [1, 4900],
      [0, 0],
      [0, 0],
    ]);
    expect(res.body.total).toBe(4900);
  });

  test('when the plan has no local pricing, then the lines carry the quantities with amount 0 and currency null', async () => {
    const s = await subscribe(off, { plan: await createPlan(off) });
    await report(off, s.customer, 'api_calls', '42');
    const res = await upcoming(off, s.customer);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ estimate: true, source: 'local', currency: null, total: 0, subtotal: 0, amount_due: 0 });
    expect(res.body.lines.map((l: { metric: string | null; quantity: number; amount: number }) => [l.metric, l.quantity, l.amount])).toEqual([
      [null, 1, 0],
      ['api_calls', 42, 0],
    ]);
  });

  test('when Stripe is on but the subscription is one Stripe does not hold (made while it was off), then the estimate, and no Stripe call', async () => {
    const s = await subscribe(off, { plan: await createPlan(off, { local_pricing: pricing }) });
    const n = calls();
    const res = await upcoming(t, s.customer);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ estimate: true, source: 'local', subscription_id: s.id, total: 4900 });
    expect(calls()).toBe(n);
  });

  test('when the customer has no subscription, then 404 as with Stripe on', async () => {
    expectError(await upcoming(off, await createCustomer(off)), 404, 'NOT_FOUND');
  });
});
