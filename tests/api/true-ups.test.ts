/**
 * Late usage billed by true-ups: late events recorded in a bundle's transaction become one Stripe
 * invoice item per metric, made by the true-up worker through the real stripe-node client against
 * the fake Stripe, once, whatever happens on the way: 500s, a refusal, an answer lost after Stripe
 * made the item and an instance that dies before marking it (another sends it again with the same
 * idempotency key), two workers at once. True-ups that cannot be billed as they stand fail with the
 * reason, and an admin queues them again once the cause is fixed. With Stripe off: the report alone.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import Stripe from 'stripe';
import request from 'supertest';
import { STRIPE_API_VERSION, stripeHostOptions } from '../../src/stripe/stripe-client';
import { TIERED_REFUSAL } from '../../src/modules/true-ups/true-up-pricing';
import { lateReportResponse } from '../../src/modules/true-ups/true-ups-schemas';
import type { TrueUp } from '../../src/modules/true-ups/true-ups-repository';
import { expectError } from '../helpers/envelope';
import { createCustomer, createPlan, subscribe } from '../helpers/factories';
import { startFakeStripe, type FakeStripe } from '../helpers/fake-stripe';
import { createTestApp, type TestApp } from '../helpers/test-app';
import { createUsageRepository } from '../../src/modules/usage/usage-repository';

const DAY = 86_400_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const day = (d: Date) => d.toISOString().slice(0, 10);

let fake: FakeStripe;
let stripe: Stripe;
let t: TestApp;
const apps: TestApp[] = [];
const meters: Record<string, string> = {};

const env = (extra: Record<string, string> = {}) => ({
  STRIPE_SECRET_KEY: 'sk_test_trueups',
  STRIPE_API_BASE: fake.url,
  STRIPE_TIMEOUT_MS: '2000',
  // The worker is run by hand here (runOnce), one pass at a time.
  FORWARDER_ENABLED: 'false',
  FORWARDER_BACKOFF_BASE_MS: '1',
  FORWARDER_BACKOFF_MAX_MS: '1',
  FORWARDER_MAX_ATTEMPTS: '3',
  FORWARDER_LEASE_SECONDS: '5',
  USAGE_METRICS: 'api_calls,storage_gb',
  ...extra,
});

async function app(extra: Record<string, string> = {}): Promise<TestApp> {
  const a = await createTestApp(env(extra));
  apps.push(a);
  return a;
}

beforeAll(async () => {
  fake = await startFakeStripe();
  stripe = new Stripe('sk_test_trueups', { apiVersion: STRIPE_API_VERSION, ...stripeHostOptions(fake.url), maxNetworkRetries: 0 });
  t = await app();
  // Other files may leave true-ups pending: only this file's are billed here.
  await t.db('usage_true_ups').where({ state: 'pending' }).update({ state: 'local', next_attempt_at: null, last_error: 'reset by test' });
  for (const metric of ['api_calls', 'storage_gb'])
    meters[metric] = (await stripe.billing.meters.create({ display_name: metric, event_name: metric, default_aggregation: { formula: 'sum' } })).id;
});
afterAll(async () => {
  for (const a of apps) await a.close().catch(() => undefined);
  await fake.close();
});
beforeEach(() => fake.clearFailures());

const metered = (metric: string) => ({ interval: 'month' as const, usage_type: 'metered' as const, meter: meters[metric]! });

/** A plan billed in Stripe: a base price and a metered price per metric (api_calls at 0.05, storage_gb at 25, unless given). */
async function stripePlan(prices: { api_calls?: Partial<Stripe.PriceCreateParams>; storage_gb?: Partial<Stripe.PriceCreateParams> | null } = {}) {
  const product = `prod_${randomBytes(4).toString('hex')}`;
  const base = await stripe.prices.create({ currency: 'usd', unit_amount: 4900, recurring: { interval: 'month' }, product, nickname: 'Pro' });
  const calls = await stripe.prices.create({
    currency: 'usd',
    unit_amount_decimal: Stripe.Decimal.from('0.05'),
    recurring: metered('api_calls'),
    product,
    ...prices.api_calls,
  });
  const storage =
    prices.storage_gb === null
      ? null
      : await stripe.prices.create({ currency: 'usd', unit_amount: 25, recurring: metered('storage_gb'), product, ...prices.storage_gb });
  const code = await createPlan(t, {
    stripe_price_id: base.id,
    metered_prices: { api_calls: calls.id, ...(storage ? { storage_gb: storage.id } : {}) },
  });
  return { code, product, calls: calls.id, storage: storage?.id ?? null };
}

/** A customer subscribed in Stripe to a plan (a new one unless given). */
async function billedCustomer(plan?: Awaited<ReturnType<typeof stripePlan>>) {
  const p = plan ?? (await stripePlan());
  const s = await subscribe(t, { plan: p.code });
  const row = await t.db('customers').where({ id: s.customerId }).first();
  return { id: s.customerId, plan: p, stripeCustomerId: row!.stripe_customer_id!, stripeSubscriptionId: s.body.stripe_subscription_id as string };
}

/**
 * Late events of one bundle, as the bundle upload records them: stored through the usage service,
 * then, in one transaction, marked late and recorded as true-ups (one per metric).
 */
async function recordLate(a: TestApp, customerId: string, events: { metric: string; quantity: string; daysAgo: number }[], bundleId = randomUUID()) {
  const late = events.map((e) => ({ metric: e.metric, quantity: e.quantity, occurredAt: new Date(Date.now() - e.daysAgo * DAY) }));
  const stored = await a.c.usage.recordBatch(
    customerId,
    late.map((e) => ({ ...e, idempotencyKey: `late-${randomBytes(8).toString('hex')}` })),
  );
  const trueUps = await a.db.transaction(async (trx) => {
    await createUsageRepository().markLate(
      trx,
      stored.map((r) => r.id),
    );
    return a.c.trueUps.recordLate(trx, customerId, bundleId, late);
  });
  return { bundleId, trueUps, byMetric: (m: string) => trueUps.find((x) => x.metric === m)! };
}

const row = (id: string) => t.db('usage_true_ups').where({ id }).first();
const itemsOf = (id: string) => [...fake.invoiceItems.values()].filter((i) => i.metadata.true_up_id === id);
const callsOf = (id: string) => fake.invoiceItemCalls().filter((c) => c.idempotencyKey === `true-up-${id}`);
const sentCount = async (a: TestApp) => (await a.c.metrics.trueUps.get()).values.find((v) => v.labels.outcome === 'sent')?.value ?? 0;

/** Passes of the worker until none of `ids` is pending (each pass is one attempt of each due true-up); their rows, in the order of `ids`. */
async function drain(a: TestApp, ids: string[]) {
  for (const end = Date.now() + 30_000; Date.now() < end;) {
    await a.c.trueUpWorker.runOnce();
    const rows = await a.db('usage_true_ups').whereIn('id', ids);
    if (rows.every((r) => r.state !== 'pending')) return ids.map((id) => rows.find((r) => r.id === id)!);
    await sleep(10);
  }
  throw new Error('true-ups still pending after 30 s of passes');
}

describe('Stripe on: the true-up worker', () => {
  test('when late events of two metrics are recorded in a bundle’s transaction, then Stripe holds one invoice item per metric, priced from the metered price, once', async () => {
    const c = await billedCustomer();
    const { bundleId, byMetric } = await recordLate(t, c.id, [
      { metric: 'api_calls', quantity: '10', daysAgo: 40 },
      { metric: 'api_calls', quantity: '20.5', daysAgo: 38 },
      { metric: 'storage_gb', quantity: '3', daysAgo: 39 },
      { metric: 'api_calls', quantity: '5', daysAgo: 36 },
      { metric: 'storage_gb', quantity: '4.25', daysAgo: 37 },
    ]);
    const calls = byMetric('api_calls');
    const storage = byMetric('storage_gb');
    expect([calls.state, calls.quantity, calls.events, storage.quantity, storage.events]).toEqual(['pending', '35.5', 3, '7.25', 2]);
    const sentBefore = await sentCount(t);

    const pass = await t.c.trueUpWorker.runOnce();
    expect(pass).toMatchObject({ claimed: 2, sent: 2, retried: 0, failed: 0 });

    const expectItem = (tu: TrueUp, price: string, quantity: string, unit: string, amount: number) => {
      const items = itemsOf(tu.id);
      expect(items).toHaveLength(1);
      expect(items[0]).toMatchObject({
        customer: c.stripeCustomerId,
        parent: { type: 'subscription_details', subscription_details: { subscription: c.stripeSubscriptionId } },
        description: `Late usage: ${tu.quantity} ${tu.metric} (${day(tu.occurredFrom)} to ${day(tu.occurredTo)})`,
        quantity_decimal: quantity,
        pricing: { unit_amount_decimal: unit },
        amount,
        currency: 'usd',
        period: { start: Math.floor(tu.occurredFrom.getTime() / 1000), end: Math.ceil(tu.occurredTo.getTime() / 1000) },
        metadata: { true_up_id: tu.id, metric: tu.metric, quantity: tu.quantity, bundle_id: bundleId },
      });
      // Priced with the metered price's terms as price_data: Stripe takes no recurring price on an invoice item.
      const [call] = callsOf(tu.id);
      expect(call!.body).toMatchObject({
        price_data: { currency: 'usd', product: c.plan.product, unit_amount_decimal: unit },
        subscription: c.stripeSubscriptionId,
      });
      expect(call!.body.price).toBeUndefined();
      return { item: items[0]!, price };
    };
    // 35.5 x 0.05 = 1.775 cents; 7.25 x 25 = 181.25 cents.
    const a = expectItem(calls, c.plan.calls, '35.5', '0.05', 2);
    const b = expectItem(storage, c.plan.storage!, '7.25', '25', 181);

    for (const [tu, made] of [
      [calls, a],
      [storage, b],
    ] as const) {
      expect(await row(tu.id)).toMatchObject({
        state: 'sent',
        attempts: 1,
        stripe_invoice_item_id: made.item.id,
        stripe_price_id: made.price,
        last_error: null,
        next_attempt_at: null,
      });
      expect((await row(tu.id))!.sent_at).toBeInstanceOf(Date);
      const audit = await t.db('audit_log').where({ action: 'usage.true_up_sent', target_id: tu.id });
      expect(audit).toHaveLength(1);
      expect(audit[0]).toMatchObject({ actor: 'system', outcome: 'success', target_type: 'usage_true_up' });
      expect(audit[0]!.details).toMatchObject({ customer_id: c.id, metric: tu.metric, quantity: tu.quantity, stripe_invoice_item_id: made.item.id });
    }
    expect((await sentCount(t)) - sentBefore).toBe(2);

    // Once: nothing is due any more, and a bundle's late usage is recorded once.
    const callsBefore = fake.invoiceItemCalls().length;
    expect(await t.c.trueUpWorker.runOnce()).toMatchObject({ claimed: 0 });
    await t.db.transaction((trx) =>
      t.c.trueUps.recordLate(trx, c.id, bundleId, [{ metric: 'api_calls', quantity: '1', occurredAt: new Date(Date.now() - 40 * DAY) }]),
    );
    expect(await t.c.trueUpWorker.runOnce()).toMatchObject({ claimed: 0 });
    expect(fake.invoiceItemCalls()).toHaveLength(callsBefore);

    const report = await request(t.app).get(`/api/reports/usage/late?customer_id=${c.id}`).set('Authorization', `Bearer ${t.adminToken}`);
    expect(report.status).toBe(200);
    expect(
      report.body.data.map((d: { metric: string; state: string; stripe_invoice_item_id: string }) => [d.metric, d.state, d.stripe_invoice_item_id]).sort(),
    ).toEqual([
      ['api_calls', 'sent', a.item.id],
      ['storage_gb', 'sent', b.item.id],
    ]);
  });

  test('when the price divides usage (transform_quantity), then the item carries the usage divided and rounded as the price says', async () => {
    const up = await billedCustomer(
      await stripePlan({ api_calls: { unit_amount: 300, unit_amount_decimal: undefined, transform_quantity: { divide_by: 1000, round: 'up' } } }),
    );
    const down = await billedCustomer(
      await stripePlan({ api_calls: { unit_amount: 300, unit_amount_decimal: undefined, transform_quantity: { divide_by: 1000, round: 'down' } } }),
    );
    const u = (await recordLate(t, up.id, [{ metric: 'api_calls', quantity: '1500.5', daysAgo: 40 }])).byMetric('api_calls');
    const d = (await recordLate(t, down.id, [{ metric: 'api_calls', quantity: '1999', daysAgo: 40 }])).byMetric('api_calls');
    await drain(t, [u.id, d.id]);
    expect(itemsOf(u.id)).toMatchObject([{ quantity_decimal: '2', amount: 600, description: expect.stringMatching(/^Late usage: 1500\.5 api_calls \(/) }]);
    expect(itemsOf(d.id)).toMatchObject([{ quantity_decimal: '1', amount: 300 }]);
  });

  test('when Stripe answers 500 twice, then the true-up is tried again after its backoff and Stripe still holds one item', async () => {
    const c = await billedCustomer();
    const tu = (await recordLate(t, c.id, [{ metric: 'api_calls', quantity: '7', daysAgo: 40 }])).byMetric('api_calls');
    fake.failNext(/^\/v1\/invoiceitems$/, 2, { status: 500 });

    expect(await t.c.trueUpWorker.runOnce()).toMatchObject({ claimed: 1, retried: 1, sent: 0 });
    expect(await row(tu.id)).toMatchObject({ state: 'pending', attempts: 1, last_error: expect.stringContaining('500') });

    expect(await drain(t, [tu.id])).toMatchObject([{ state: 'sent', attempts: 3, last_error: null }]);
    expect(callsOf(tu.id)).toHaveLength(3);
    expect(itemsOf(tu.id)).toHaveLength(1);
    expect((await row(tu.id))!.stripe_invoice_item_id).toBe(itemsOf(tu.id)[0]!.id);
  });

  test('when Stripe fails every attempt (FORWARDER_MAX_ATTEMPTS) or refuses for good (a 4xx), then the true-up is failed with Stripe’s error and audited', async () => {
    const c = await billedCustomer();
    const retried = (await recordLate(t, c.id, [{ metric: 'api_calls', quantity: '7', daysAgo: 40 }])).byMetric('api_calls');
    fake.failAlways(/^\/v1\/invoiceitems$/, { status: 503 });
    expect(await drain(t, [retried.id])).toMatchObject([{ state: 'failed', attempts: 3, last_error: expect.stringContaining('503') }]);
    expect(callsOf(retried.id)).toHaveLength(3);
    expect(itemsOf(retried.id)).toEqual([]);
    const audit = await t.db('audit_log').where({ action: 'usage.true_up_failed', target_id: retried.id });
    expect(audit).toMatchObject([
      { actor: 'system', outcome: 'failure', details: expect.objectContaining({ error: expect.stringContaining('503'), attempts: 3 }) },
    ]);

    // A permanent refusal fails at the first attempt.
    const other = await billedCustomer();
    const tu = (await recordLate(t, other.id, [{ metric: 'api_calls', quantity: '2', daysAgo: 40 }])).byMetric('api_calls');
    fake.clearFailures();
    fake.failNext(/^\/v1\/invoiceitems$/, 1, { status: 400, type: 'invalid_request_error', message: 'No such tax rate' });
    expect(await drain(t, [tu.id])).toMatchObject([{ state: 'failed', attempts: 1, last_error: expect.stringContaining('No such tax rate') }]);
    expect(callsOf(tu.id)).toHaveLength(1);
  });

  test('when an instance dies after Stripe made the item but before marking it (the answer lost), then another instance sends it again: one item, the same id', async () => {
    const c = await billedCustomer();
    const tu = (await recordLate(t, c.id, [{ metric: 'api_calls', quantity: '12', daysAgo: 40 }])).byMetric('api_calls');
    fake.failNext(/^\/v1\/invoiceitems$/, 1, 'drop');
    // Its Stripe call outlasts its death: it cannot have written anything about it.
    const dying = await createTestApp(env({ STRIPE_TIMEOUT_MS: '3000' }));
    apps.push(dying);
    const pass = dying.c.trueUpWorker.runOnce();
    for (const end = Date.now() + 20_000; itemsOf(tu.id).length === 0 && Date.now() < end;) await sleep(5);
    const [made] = itemsOf(tu.id);
    expect(made).toBeDefined();
    // Its pool goes: no mark, no lease renewal.
    await dying.db.destroy();
    await pass;
    expect(await row(tu.id)).toMatchObject({ state: 'pending', stripe_invoice_item_id: null, attempts: 1 });

    // A new instance claims it once the dead one's lease has run out (FORWARDER_LEASE_SECONDS).
    const next = await app();
    const rows = await drain(next, [tu.id]);
    expect(rows).toMatchObject([{ state: 'sent', stripe_invoice_item_id: made!.id, attempts: 2 }]);
    expect(itemsOf(tu.id)).toHaveLength(1);
    const calls = callsOf(tu.id);
    expect(calls).toHaveLength(2);
    // The same request, so Stripe answers it with the item it made (it refuses a key reused with other parameters).
    expect(calls[1]!.body).toEqual(calls[0]!.body);
  }, 60_000);

  test('when the worker is started (FORWARDER_ENABLED), then it bills a true-up recorded later on its own; stopped, it claims nothing more', async () => {
    const running = await app({ FORWARDER_ENABLED: 'true', FORWARDER_INTERVAL_MS: '20' });
    running.c.trueUpWorker.start();
    const c = await billedCustomer();
    const tu = (await recordLate(t, c.id, [{ metric: 'api_calls', quantity: '3', daysAgo: 40 }])).byMetric('api_calls');
    for (const end = Date.now() + 20_000; (await row(tu.id))!.state === 'pending' && Date.now() < end;) await sleep(20);
    expect(await row(tu.id)).toMatchObject({ state: 'sent', stripe_invoice_item_id: itemsOf(tu.id)[0]!.id });
    await running.c.trueUpWorker.stop();
    expect(running.c.trueUpWorker.held()).toBe(0);
    const after = (await recordLate(t, c.id, [{ metric: 'api_calls', quantity: '1', daysAgo: 40 }])).byMetric('api_calls');
    expect(await running.c.trueUpWorker.runOnce()).toMatchObject({ claimed: 0 });
    expect(await row(after.id)).toMatchObject({ state: 'pending', attempts: 0 });
    await drain(t, [after.id]);
  });

  test('when two workers run at once, then each true-up is claimed by one of them: one item each', async () => {
    const other = await app();
    const plan = await stripePlan();
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const c = await billedCustomer(plan);
      const r = await recordLate(t, c.id, [
        { metric: 'api_calls', quantity: `${i + 1}`, daysAgo: 40 },
        { metric: 'storage_gb', quantity: `${i + 2}`, daysAgo: 39 },
      ]);
      ids.push(...r.trueUps.map((x) => x.id));
    }
    fake.setLatency(10, 40);
    const [x, y] = await Promise.all([t.c.trueUpWorker.runOnce(), other.c.trueUpWorker.runOnce()]);
    expect(x.claimed + y.claimed).toBe(ids.length);
    expect(x.sent + y.sent).toBe(ids.length);
    for (const id of ids) {
      expect([id, callsOf(id).length, itemsOf(id).length]).toEqual([id, 1, 1]);
      expect((await row(id))!.stripe_invoice_item_id).toBe(itemsOf(id)[0]!.id);
    }
  });
});

describe('Stripe on: true-ups that cannot be billed as they stand', () => {
  test('when the metered price is tiered, then the true-up fails with the reason; once the plan has a per-unit price, the retry route bills it', async () => {
    const c = await billedCustomer(
      await stripePlan({
        api_calls: {
          unit_amount_decimal: undefined,
          billing_scheme: 'tiered',
          tiers_mode: 'graduated',
          tiers: [
            { up_to: 1000, unit_amount: 5 },
            { up_to: 'inf', unit_amount: 2 },
          ],
        },
      }),
    );
    const tu = (await recordLate(t, c.id, [{ metric: 'api_calls', quantity: '1200', daysAgo: 40 }])).byMetric('api_calls');
    expect(await drain(t, [tu.id])).toMatchObject([{ state: 'failed', last_error: TIERED_REFUSAL, stripe_price_id: c.plan.calls, attempts: 1 }]);
    expect(callsOf(tu.id)).toEqual([]);
    expect(await t.db('audit_log').where({ action: 'usage.true_up_failed', target_id: tu.id })).toMatchObject([
      { details: expect.objectContaining({ error: TIERED_REFUSAL }) },
    ]);

    const listed = await request(t.app).get(`/api/reports/usage/late?customer_id=${c.id}&state=failed`).set('Authorization', `Bearer ${t.adminToken}`);
    expect(listed.body.data).toMatchObject([{ id: tu.id, state: 'failed', last_error: TIERED_REFUSAL }]);

    // Fixed: the plan's metered price for api_calls is per unit now.
    const perUnit = await stripe.prices.create({ currency: 'usd', unit_amount: 3, recurring: metered('api_calls'), product: c.plan.product });
    const patched = await request(t.app)
      .patch(`/api/plans/${c.plan.code}`)
      .set('Authorization', `Bearer ${t.adminToken}`)
      .send({ metered_prices: { api_calls: perUnit.id, storage_gb: c.plan.storage } });
    expect(patched.status).toBe(200);

    const retry = await request(t.app)
      .post('/api/reports/usage/late/retry')
      .set('Authorization', `Bearer ${t.adminToken}`)
      .send({ ids: [tu.id] });
    expect(retry.status).toBe(200);
    expect(retry.body).toEqual({ requeued: 1, ids: [tu.id] });
    expect(await row(tu.id)).toMatchObject({ state: 'pending', attempts: 0 });
    const audit = await t.db('audit_log').where({ action: 'usage.true_up_retry' }).orderBy('id', 'desc').first();
    expect(audit).toMatchObject({ actor: 'admin', outcome: 'success', details: expect.objectContaining({ requeued: 1, ids: [tu.id] }) });

    expect(await drain(t, [tu.id])).toMatchObject([{ state: 'sent', stripe_price_id: perUnit.id, attempts: 1, last_error: null }]);
    expect(itemsOf(tu.id)).toMatchObject([{ quantity_decimal: '1200', amount: 3600, pricing: { unit_amount_decimal: '3' } }]);
  });

  test('when the customer is not linked to Stripe, has no subscription, no metered price for the metric, or the price is not in Stripe, then the true-up fails with that reason and nothing is sent', async () => {
    // With Stripe on a new customer gets its Stripe customer at once: this one lost it (as an unlinked one would be).
    const unlinked = await createCustomer(t);
    await t.db('customers').where({ id: unlinked.id }).update({ stripe_customer_id: null });
    const unsubscribed = await createCustomer(t);
    const noStoragePrice = await billedCustomer(await stripePlan({ storage_gb: null }));
    const missingPrice = await billedCustomer();
    await request(t.app)
      .patch(`/api/plans/${missingPrice.plan.code}`)
      .set('Authorization', `Bearer ${t.adminToken}`)
      .send({ metered_prices: { api_calls: 'price_gone', storage_gb: missingPrice.plan.storage } })
      .expect(200);
    const a = (await recordLate(t, unlinked.id, [{ metric: 'api_calls', quantity: '1', daysAgo: 40 }])).byMetric('api_calls');
    const b = (await recordLate(t, noStoragePrice.id, [{ metric: 'storage_gb', quantity: '1', daysAgo: 40 }])).byMetric('storage_gb');
    const c = (await recordLate(t, missingPrice.id, [{ metric: 'api_calls', quantity: '1', daysAgo: 40 }])).byMetric('api_calls');
    const d = (await recordLate(t, unsubscribed.id, [{ metric: 'api_calls', quantity: '1', daysAgo: 40 }])).byMetric('api_calls');
    // Control: a billable one in the same pass is sent.
    const ok = (await recordLate(t, (await billedCustomer()).id, [{ metric: 'api_calls', quantity: '1', daysAgo: 40 }])).byMetric('api_calls');

    await drain(t, [a.id, b.id, c.id, d.id, ok.id]);
    expect(await row(a.id)).toMatchObject({ state: 'failed', last_error: 'customer not linked to Stripe', attempts: 1 });
    expect(await row(b.id)).toMatchObject({
      state: 'failed',
      last_error: `plan "${noStoragePrice.plan.code}" has no metered price for storage_gb (its metered_prices)`,
    });
    expect(await row(c.id)).toMatchObject({ state: 'failed', last_error: expect.stringContaining('price_gone'), stripe_price_id: 'price_gone' });
    expect((await row(c.id))!.last_error).toMatch(/does not exist in Stripe/);
    expect(await row(d.id)).toMatchObject({ state: 'failed', last_error: 'customer has no current subscription to bill the true-up on' });
    for (const id of [a.id, b.id, c.id, d.id]) expect([id, callsOf(id).length]).toEqual([id, 0]);
    expect(await row(ok.id)).toMatchObject({ state: 'sent' });
  });

  test('when the retry route is given ids that are not failed, then they are left alone; a malformed id is refused (422)', async () => {
    const c = await billedCustomer();
    const tu = (await recordLate(t, c.id, [{ metric: 'api_calls', quantity: '1', daysAgo: 40 }])).byMetric('api_calls');
    await drain(t, [tu.id]);
    const before = await row(tu.id);
    expect(before!.state).toBe('sent');
    const admin = { Authorization: `Bearer ${t.adminToken}` };
    const res = await request(t.app)
      .post('/api/reports/usage/late/retry')
      .set(admin)
      .send({ ids: [tu.id] });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ requeued: 0, ids: [] });
    expect(await row(tu.id)).toEqual(before);

    expectError(
      await request(t.app)
        .post('/api/reports/usage/late/retry')
        .set(admin)
        .send({ ids: ['not-a-uuid'] }),
      422,
      'VALIDATION_FAILED',
    );
    expectError(await request(t.app).post('/api/reports/usage/late/retry').set(admin).send({ ids: [] }), 422, 'VALIDATION_FAILED');
    expectError(
      await request(t.app)
        .post('/api/reports/usage/late/retry')
        .set(admin)
        .send({ ids: [tu.id], all: true }),
      422,
      'VALIDATION_FAILED',
    );
    // Without ids: every failed one, and only those.
    const unlinked = await createCustomer(t);
    await t.db('customers').where({ id: unlinked.id }).update({ stripe_customer_id: null });
    const failed = (await recordLate(t, unlinked.id, [{ metric: 'api_calls', quantity: '1', daysAgo: 40 }])).byMetric('api_calls');
    expect(await drain(t, [failed.id])).toMatchObject([{ state: 'failed' }]);
    const all = await request(t.app).post('/api/reports/usage/late/retry').set(admin).send({});
    expect(all.status).toBe(200);
    expect(all.body.ids).toContain(failed.id);
    expect(all.body.ids).not.toContain(tu.id);
    expect(all.body.requeued).toBe(all.body.ids.length);
    expect(await row(tu.id)).toEqual(before);
    // Nothing is left pending for other files: what was queued again is billed or fails again.
    await drain(t, all.body.ids);
  });
});

describe('Stripe off', () => {
  test('when late usage is recorded, then its true-ups are local: listed by the report, never claimed', async () => {
    const off = await createTestApp({ USAGE_METRICS: 'api_calls,storage_gb' });
    apps.push(off);
    expect(off.c.stripe.enabled).toBe(false);
    const c = await createCustomer(off);
    const { trueUps } = await recordLate(off, c.id, [
      { metric: 'api_calls', quantity: '4', daysAgo: 40 },
      { metric: 'storage_gb', quantity: '2', daysAgo: 40 },
    ]);
    expect(trueUps.map((x) => [x.metric, x.state, x.nextAttemptAt])).toEqual([
      ['api_calls', 'local', null],
      ['storage_gb', 'local', null],
    ]);
    off.c.trueUpWorker.start();
    expect(await off.c.trueUpWorker.runOnce()).toMatchObject({ claimed: 0 });
    await off.c.trueUpWorker.stop();
    const res = await request(off.app).get(`/api/reports/usage/late?customer_id=${c.id}`).set('Authorization', `Bearer ${off.adminToken}`);
    expect(res.status).toBe(200);
    expect(lateReportResponse.safeParse(res.body).success).toBe(true);
    expect(
      res.body.data.map((d: { metric: string; state: string; stripe_invoice_item_id: null }) => [d.metric, d.state, d.stripe_invoice_item_id]).sort(),
    ).toEqual([
      ['api_calls', 'local', null],
      ['storage_gb', 'local', null],
    ]);
    expect(res.body.totals).toEqual([
      { metric: 'api_calls', quantity: '4', events: 1 },
      { metric: 'storage_gb', quantity: '2', events: 1 },
    ]);
    for (const x of trueUps) expect(callsOf(x.id)).toEqual([]);
  });
});
