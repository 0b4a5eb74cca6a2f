import request from 'supertest';
import { expectError } from '../helpers/envelope';
import { createCustomer, createPlan, subscribe } from '../helpers/factories';
import { FakeStripe, startFakeStripe } from '../helpers/fake-stripe';
import { createTestApp, TestApp } from '../helpers/test-app';

describe('with Stripe off, local subscriptions renew until canceled', () => {
  const DAY = 86_400_000;
  let clock = Date.now();
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({}, { now: () => clock });
  });
  afterAll(() => t.close());
  beforeEach(() => {
    clock = Date.now();
  });

  /** What the admin API, the customer's own list and a license fetched now say of the subscription. */
  async function views(s: Awaited<ReturnType<typeof subscribe>>) {
    const admin = (await request(t.app).get(`/api/customers/${s.customerId}/subscriptions`).set('Authorization', `Bearer ${t.adminToken}`).expect(200)).body
      .data[0];
    const own = (await request(t.app).get('/api/subscriptions').set('X-API-Key', s.customer.apiKey).expect(200)).body.data[0];
    const license = (await request(t.app).get('/api/licenses').set('X-API-Key', s.customer.apiKey).expect(200)).body.claims;
    return { admin, own, license };
  }

  test('when a local subscription runs across three periods, then each renews, and the admin API, the customer and the license agree', async () => {
    const start = clock;
    const s = await subscribe(t);
    for (let period = 1; period <= 3; period++) {
      clock = start + period * 30 * DAY + DAY; // a day into the next period
      const end = new Date(start + (period + 1) * 30 * DAY).toISOString();
      const { admin, own, license } = await views(s);
      expect([period, admin.status, admin.current_period_start, admin.current_period_end]).toEqual([
        period,
        'active',
        new Date(start + period * 30 * DAY).toISOString(),
        end,
      ]);
      expect(own).toEqual(admin);
      const endSec = Math.floor(Date.parse(end) / 1000);
      expect([license.status, license.valid_until, license.subscription.current_period_end]).toEqual(['active', endSec, endSec]);
    }
    const renewals = await t.db('audit_log').where({ action: 'subscription.renew', target_id: s.id }).orderBy('at');
    expect(renewals.map((r) => [r.actor, r.details.periods])).toEqual([
      ['system', 1],
      ['system', 1],
      ['system', 1],
    ]);

    // Canceled at the period end: it ends then, and nothing renews it.
    await request(t.app).delete(`/api/customers/${s.customerId}/subscriptions/${s.id}`).set('Authorization', `Bearer ${t.adminToken}`).expect(200);
    clock = start + 4 * 30 * DAY + DAY;
    const { admin, own, license } = await views(s);
    expect([admin.status, admin.canceled_at, own.status, license.status]).toEqual([
      'canceled',
      new Date(start + 4 * 30 * DAY).toISOString(),
      'canceled',
      'expired',
    ]);
  });

  test('when periods were missed (nobody read it for 100 days), then one renewal catches up to the period holding now', async () => {
    const start = clock;
    const s = await subscribe(t);
    clock = start + 100 * DAY;
    const { admin } = await views(s);
    expect([admin.current_period_start, admin.current_period_end]).toEqual([
      new Date(start + 90 * DAY).toISOString(),
      new Date(start + 120 * DAY).toISOString(),
    ]);
    expect((await t.db('audit_log').where({ action: 'subscription.renew', target_id: s.id })).map((r) => r.details.periods)).toEqual([3]);
  });

  test('when a trial ends, then the subscription becomes active, its first period starting at the trial end', async () => {
    const start = clock;
    const s = await subscribe(t, { body: { trial_days: 14 } });
    clock = start + 15 * DAY;
    const { admin, license } = await views(s);
    expect([admin.status, admin.current_period_start, admin.current_period_end]).toEqual([
      'active',
      new Date(start + 14 * DAY).toISOString(),
      new Date(start + 44 * DAY).toISOString(),
    ]);
    expect([license.status, license.valid_until]).toEqual(['active', Math.floor((start + 44 * DAY) / 1000)]);
  });

  test('when several requests read an overdue subscription at once, then it renews once', async () => {
    const start = clock;
    const s = await subscribe(t);
    clock = start + 31 * DAY;
    await Promise.all(Array.from({ length: 8 }, () => request(t.app).get('/api/subscriptions').set('X-API-Key', s.customer.apiKey).expect(200)));
    expect(await t.db('audit_log').where({ action: 'subscription.renew', target_id: s.id })).toHaveLength(1);
    expect((await t.db('subscriptions').where({ id: s.id }).first())!.current_period_end!.getTime()).toBe(start + 60 * DAY);
  });
});

describe('with Stripe off', () => {
  let t: TestApp;
  let admin: Record<string, string>;
  beforeAll(async () => {
    t = await createTestApp();
    admin = { Authorization: `Bearer ${t.adminToken}` };
  });
  afterAll(() => t.close());

  test('when an admin subscribes a customer, then a local active subscription exists', async () => {
    const s = await subscribe(t);
    expect(s.body).toMatchObject({
      customer_id: s.customerId,
      status: 'active',
      stripe_subscription_id: null,
      cancel_at_period_end: false,
      plan: { code: s.plan },
    });
    expect(s.body.plan.entitlements.features).toEqual(['sso', 'audit-export']);
    expect(await t.db('subscriptions').where({ id: s.id })).toHaveLength(1);
  });

  test('when a trial is asked for, then the subscription is trialing until its end', async () => {
    const s = await subscribe(t, { body: { trial_days: 14 } });
    expect(s.body.status).toBe('trialing');
    expect(Date.parse(s.body.trial_end) - Date.now()).toBeGreaterThan(13.9 * 86_400_000);
  });

  test('when the plan is changed, then the subscription is on the new plan', async () => {
    const s = await subscribe(t);
    const next = await createPlan(t);
    const res = await request(t.app).patch(`/api/customers/${s.customerId}/subscriptions/${s.id}`).set(admin).send({ plan: next });
    expect(res.status).toBe(200);
    expect(res.body.subscription.plan.code).toBe(next);
  });

  test('when canceled, then at the period end by default, at once on request', async () => {
    const s = await subscribe(t);
    const later = await request(t.app).delete(`/api/customers/${s.customerId}/subscriptions/${s.id}`).set(admin);
    expect(later.body.subscription).toMatchObject({ status: 'active', cancel_at_period_end: true });
    const now = await request(t.app).delete(`/api/customers/${s.customerId}/subscriptions/${s.id}`).query({ immediately: 'true' }).set(admin);
    expect(now.body.subscription.status).toBe('canceled');
    expect(now.body.subscription.canceled_at).not.toBeNull();
  });

  test("when a customer reads subscriptions, then only its own appear; another customer's are never shown", async () => {
    const a = await subscribe(t);
    const b = await subscribe(t);
    const mine = await request(t.app).get('/api/subscriptions').set('X-API-Key', a.customer.apiKey);
    expect(mine.body.data.map((s: { id: string }) => s.id)).toEqual([a.id]);
    const theirs = await request(t.app).get('/api/subscriptions').set('X-API-Key', b.customer.apiKey);
    expect(JSON.stringify(theirs.body)).not.toContain(a.id);
    // A subscription id of another customer, through an admin path of the wrong customer: 404.
    expectError(await request(t.app).delete(`/api/customers/${b.customerId}/subscriptions/${a.id}`).set(admin), 404, 'NOT_FOUND');
  });

  test('when the plan is unknown or archived, or the customer deleted, then no subscription is made', async () => {
    const c = await createCustomer(t);
    const url = `/api/customers/${c.id}/subscriptions`;
    expectError(await request(t.app).post(url).set(admin).send({ plan: 'no-such-plan' }), 422, 'VALIDATION_FAILED');
    const archived = await createPlan(t);
    await request(t.app).patch(`/api/plans/${archived}`).set(admin).send({ status: 'archived' }).expect(200);
    expectError(await request(t.app).post(url).set(admin).send({ plan: archived }), 409, 'PLAN_ARCHIVED');
    expectError(await request(t.app).post(url).set(admin).send({ plan: archived, extra: 1 }), 422, 'VALIDATION_FAILED');
    expectError(await request(t.app).post(url).set(admin).send({ plan: archived, trial_days: -3 }), 422, 'VALIDATION_FAILED');
    await request(t.app).delete(`/api/customers/${c.id}`).set(admin).expect(200);
    expectError(
      await request(t.app)
        .post(url)
        .set(admin)
        .send({ plan: await createPlan(t) }),
      409,
      'CUSTOMER_DELETED',
    );
    expect(await t.db('subscriptions').where({ customer_id: c.id })).toHaveLength(0);
  });

  test('when the Idempotency-Key header is malformed, then 422 naming it, as on usage, and nothing is made', async () => {
    const c = await createCustomer(t);
    const plan = await createPlan(t);
    for (const key of ['has spaces', 'x'.repeat(191), 'tab\there']) {
      const res = await request(t.app).post(`/api/customers/${c.id}/subscriptions`).set(admin).set('Idempotency-Key', key).send({ plan });
      expectError(res, 422, 'VALIDATION_FAILED');
      expect(res.body.error.details).toEqual([expect.objectContaining({ path: 'idempotency-key' })]);
    }
    expect(await t.db('subscriptions').where({ customer_id: c.id })).toHaveLength(0);
    await request(t.app).post(`/api/customers/${c.id}/subscriptions`).set(admin).set('Idempotency-Key', 'ok-key-1').send({ plan }).expect(201);
  });
});

describe('with Stripe on', () => {
  let stripe: FakeStripe;
  let t: TestApp;
  let admin: Record<string, string>;
  beforeAll(async () => {
    stripe = await startFakeStripe();
    t = await createTestApp({ STRIPE_SECRET_KEY: 'sk_test_subs', STRIPE_API_BASE: stripe.url, STRIPE_TIMEOUT_MS: '300', FORWARDER_ENABLED: 'false' });
    admin = { Authorization: `Bearer ${t.adminToken}` };
  });
  afterAll(async () => {
    await t.close();
    await stripe.close();
  });
  beforeEach(() => stripe.clearFailures());

  const stripePlan = () =>
    createPlan(t, { stripe_price_id: `price_${Math.random().toString(36).slice(2, 10)}`, metered_prices: { api_calls: 'price_meteredcalls' } });

  test('when a customer is created, then its Stripe customer is created once and linked; changes follow; deletion leaves Stripe alone', async () => {
    const c = await createCustomer(t, { company_name: 'Mirror Ltd' });
    const row = (await t.db('customers').where({ id: c.id }).first())!;
    const creates = stripe.requests.filter((r) => r.method === 'POST' && r.path === '/v1/customers' && (r.body as any).metadata?.customer_id === c.id);
    expect(creates).toHaveLength(1);
    expect(creates[0]!.idempotencyKey).toBe(`customer-create-${c.id}`);
    expect(stripe.customers.get(row.stripe_customer_id!)).toMatchObject({ email: c.email, name: 'Mirror Ltd' });

    await request(t.app).patch(`/api/customers/${c.id}`).set(admin).send({ company_name: 'Renamed Ltd' }).expect(200);
    expect(stripe.customers.get(row.stripe_customer_id!)).toMatchObject({ name: 'Renamed Ltd' });

    await request(t.app).delete(`/api/customers/${c.id}`).set(admin).expect(200);
    expect(stripe.requests.filter((r) => r.method === 'DELETE' && r.path.startsWith('/v1/customers'))).toHaveLength(0);
  });

  test('when a subscription is created, then Stripe gets the plan prices and our ids, and the local row mirrors Stripe', async () => {
    const plan = await stripePlan();
    const s = await subscribe(t, { plan });
    const stripeSub = stripe.subscriptions.get(s.body.stripe_subscription_id)!;
    expect(stripeSub.items.data.map((i) => i.price.id).sort()).toEqual(
      [(await t.db('plans').where({ code: plan }).first())!.stripe_price_id, 'price_meteredcalls'].sort(),
    );
    expect(stripeSub.metadata).toEqual({ customer_id: s.customerId, plan_code: plan, subscription_id: s.id });
    expect(s.body).toMatchObject({ status: 'active', current_period_end: new Date(stripeSub.items.data[0]!.current_period_end * 1000).toISOString() });
  });

  test('when Stripe fails (500) on create, then 502, no local subscription, and the retry makes no second Stripe subscription', async () => {
    const plan = await stripePlan();
    const c = await createCustomer(t);
    const before = stripe.subscriptions.size;
    stripe.failNext(/^\/v1\/subscriptions$/, 3, { status: 500 }); // stripe-node's own retries fail too
    const failed = await request(t.app).post(`/api/customers/${c.id}/subscriptions`).set(admin).send({ plan });
    expectError(failed, 502, 'BAD_GATEWAY');
    expect(await t.db('subscriptions').where({ customer_id: c.id })).toHaveLength(0);
    const retried = await request(t.app).post(`/api/customers/${c.id}/subscriptions`).set(admin).send({ plan });
    expect(retried.status).toBe(201);
    expect(stripe.subscriptions.size).toBe(before + 1);
    const attempts = stripe.requests.filter((r) => r.method === 'POST' && r.path === '/v1/subscriptions' && (r.body as any).metadata?.customer_id === c.id);
    expect(attempts.length).toBeGreaterThanOrEqual(2);
    expect(new Set(attempts.map((r) => r.idempotencyKey)).size).toBe(1);
    expect(await t.db('subscriptions').where({ customer_id: c.id })).toHaveLength(1);
  });

  test('when Stripe made the subscription but its answers were lost (timeouts), then 503, and the retry returns that same subscription', async () => {
    const plan = await stripePlan();
    const c = await createCustomer(t);
    const before = stripe.subscriptions.size;
    stripe.failNext(/^\/v1\/subscriptions$/, 3, 'drop');
    const failed = await request(t.app).post(`/api/customers/${c.id}/subscriptions`).set(admin).send({ plan });
    expectError(failed, 503, 'SERVICE_UNAVAILABLE');
    expect(await t.db('subscriptions').where({ customer_id: c.id })).toHaveLength(0);
    expect(stripe.subscriptions.size).toBe(before + 1); // Stripe did make it
    const retried = await request(t.app).post(`/api/customers/${c.id}/subscriptions`).set(admin).send({ plan });
    expect(retried.status).toBe(201);
    expect(stripe.subscriptions.size).toBe(before + 1); // and did not make a second
    expect(await t.db('subscriptions').where({ customer_id: c.id })).toHaveLength(1);
  });

  test('when the plan changes or the subscription is canceled, then Stripe is told and the local row follows', async () => {
    const s = await subscribe(t, { plan: await stripePlan() });
    const next = await stripePlan();
    const nextPrice = (await t.db('plans').where({ code: next }).first())!.stripe_price_id;
    const changed = await request(t.app).patch(`/api/customers/${s.customerId}/subscriptions/${s.id}`).set(admin).send({ plan: next });
    expect(changed.status).toBe(200);
    expect(changed.body.subscription.plan.code).toBe(next);
    expect(
      stripe.subscriptions
        .get(s.body.stripe_subscription_id)!
        .items.data.map((i) => i.price.id)
        .sort(),
    ).toEqual([nextPrice, 'price_meteredcalls'].sort());

    const atEnd = await request(t.app).delete(`/api/customers/${s.customerId}/subscriptions/${s.id}`).set(admin);
    expect(atEnd.body.subscription).toMatchObject({ status: 'active', cancel_at_period_end: true });
    expect(stripe.subscriptions.get(s.body.stripe_subscription_id)!.cancel_at_period_end).toBe(true);
    const now = await request(t.app).delete(`/api/customers/${s.customerId}/subscriptions/${s.id}`).query({ immediately: 'true' }).set(admin);
    expect(now.body.subscription.status).toBe('canceled');
    expect(stripe.subscriptions.get(s.body.stripe_subscription_id)!.status).toBe('canceled');
  });

  test('when the plan has no Stripe price, then 422 and nothing is sent', async () => {
    const plan = await createPlan(t);
    const c = await createCustomer(t);
    const before = stripe.requests.length;
    expectError(await request(t.app).post(`/api/customers/${c.id}/subscriptions`).set(admin).send({ plan }), 422, 'VALIDATION_FAILED');
    expect(stripe.requests.slice(before).filter((r) => r.path === '/v1/subscriptions')).toHaveLength(0);
  });
});
