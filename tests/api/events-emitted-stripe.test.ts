/**
 * Events written by the Stripe paths, against the fake Stripe with webhooks signed by stripe-node:
 * subscription state applied from webhooks, admin changes and reconciliation; invoices paid and
 * failed; usage the forwarder parks as failed or Stripe's error reports reject. Each is written once,
 * in the transaction of its change: a duplicate or older Stripe event writes none, and a change that
 * fails at commit (through its event, or through the row it changes) leaves neither.
 */
import Stripe from 'stripe';
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { CreatedCustomer, createCustomer, createPlan, createStripeCustomer, reportBatch, subscribe } from '../helpers/factories';
import { eventFaults, eventsOf, typesOf } from '../helpers/event-faults';
import { FakeStripe, startFakeStripe } from '../helpers/fake-stripe';
import { createTestApp, TestApp } from '../helpers/test-app';
import { clearPendingForwarding } from '../helpers/forwarding-state';

const SECRET = 'whsec_eventsemittedsecret123';
const GRACE_DAYS = 10;
let stripe: FakeStripe;
let t: TestApp;
let admin: Record<string, string>;
let faults: ReturnType<typeof eventFaults>;

beforeAll(async () => {
  stripe = await startFakeStripe();
  t = await createTestApp({
    STRIPE_SECRET_KEY: 'sk_test_eventsemitted123',
    STRIPE_API_BASE: stripe.url,
    STRIPE_WEBHOOK_SECRET: SECRET,
    STRIPE_TIMEOUT_MS: '500',
    LICENSE_GRACE_DAYS: String(GRACE_DAYS),
    FORWARDER_BACKOFF_BASE_MS: '20',
    FORWARDER_BACKOFF_MAX_MS: '40',
    FORWARDER_MAX_ATTEMPTS: '2',
    FORWARDER_LEASE_SECONDS: '5',
  });
  admin = { Authorization: `Bearer ${t.adminToken}` };
  faults = eventFaults(t.db);
  await faults.install();
});
afterAll(async () => {
  await faults.uninstall();
  await t.close();
  await stripe.close();
});
beforeEach(async () => {
  stripe.clearFailures();
  await faults.clear();
  // The forwarder claims any due event: only this test's.
  await clearPendingForwarding(t.db);
});

let clock = Math.floor(Date.now() / 1000);
const event = (type: string, object: unknown, created = ++clock) => stripe.event(type, object as Record<string, unknown>, created);
function deliver(evt: object) {
  const payload = JSON.stringify(evt);
  const header = Stripe.webhooks.generateTestHeaderString({ payload, secret: SECRET });
  return request(t.app).post('/api/webhooks/stripe').set('Content-Type', 'application/json').set('Stripe-Signature', header).send(payload);
}
const stripePlan = () => createPlan(t, { stripe_price_id: `price_${randomBytes(5).toString('hex')}` });
const subShown = async (customerId: string, id: string) =>
  ((await request(t.app).get(`/api/customers/${customerId}/subscriptions`).set(admin).expect(200)).body.data as { id: string }[]).find((s) => s.id === id);
const subTypes = async (customerId: string) => (await typesOf(t.db, customerId)).filter((x) => !x.startsWith('customer.') && !x.startsWith('api_key.'));
const processed = async (id: string) => (await t.db('stripe_events').where({ id }).first())?.processed_at ?? null;
const allEventsText = async () => (await t.db.raw(`select coalesce(string_agg(e::text, ' '), '') as text from events e`)).rows[0].text as string;

/** A subscription made through the admin API, in Stripe, its state then changed in Stripe by `patch`, announced by a webhook. */
async function stripeSubscription() {
  const s = await subscribe(t, { plan: await stripePlan() });
  return { ...s, stripeId: s.body.stripe_subscription_id as string };
}
const updatedEvent = (stripeId: string, patch: Record<string, unknown> = {}) => {
  stripe.setSubscription(stripeId, patch);
  return event('customer.subscription.updated', { ...stripe.subscriptions.get(stripeId) });
};

describe('subscriptions from Stripe', () => {
  test('when an admin subscribes a customer, then one subscription.created with the subscription as shown, and the customer its link', async () => {
    const s = await stripeSubscription();
    const created = await eventsOf(t.db, s.customerId, 'subscription.created');
    expect(created).toHaveLength(1);
    expect(created[0]!.data).toEqual(await subShown(s.customerId, s.id));
    // The customer was linked to its new Stripe customer: a change the API shows.
    const customer = (await request(t.app).get(`/api/customers/${s.customerId}`).set(admin).expect(200)).body.customer;
    expect(customer.stripe_customer_id).toMatch(/^cus_/);
    expect((await eventsOf(t.db, s.customerId, 'customer.updated')).map((e) => e.data)).toEqual([customer]);
  });

  test('when payment starts failing, then subscription.past_due and license.grace_started once; duplicate, unchanged and older events write none', async () => {
    const s = await stripeSubscription();
    const older = event('customer.subscription.updated', { ...stripe.subscriptions.get(s.stripeId) }, clock + 1);
    const pastDue = updatedEvent(s.stripeId, { status: 'past_due' });
    clock += 1;
    expect((await deliver(pastDue).expect(200)).body.result).toBe('processed');
    const types = (await subTypes(s.customerId)).sort();
    expect(types).toEqual(['license.grace_started', 'subscription.created', 'subscription.past_due']);
    const shown = await subShown(s.customerId, s.id);
    expect((await eventsOf(t.db, s.customerId, 'subscription.past_due'))[0]!.data).toEqual(shown);
    const since = (await t.db('subscriptions').where({ id: s.id }).first())!.payment_failing_since as Date;
    expect((await eventsOf(t.db, s.customerId, 'license.grace_started'))[0]!.data).toEqual({
      customer_id: s.customerId,
      subscription_id: s.id,
      status: 'past_due',
      payment_failing_since: since.toISOString(),
      grace_until: new Date(since.getTime() + GRACE_DAYS * 86_400_000).toISOString(),
    });

    expect((await deliver(pastDue).expect(200)).body.result).toBe('duplicate');
    expect((await deliver(updatedEvent(s.stripeId)).expect(200)).body.result).toBe('processed'); // newer, same state
    expect((await deliver(older).expect(200)).body.result).toBe('processed'); // older: not applied
    expect((await subShown(s.customerId, s.id))!).toMatchObject({ status: 'past_due' });
    expect((await subTypes(s.customerId)).sort()).toEqual(types);

    // Still past_due, something else changed: updated, not past_due again.
    await deliver(updatedEvent(s.stripeId, { cancel_at_period_end: true })).expect(200);
    const updated = await eventsOf(t.db, s.customerId, 'subscription.updated');
    expect(updated).toHaveLength(1);
    expect(updated[0]!.data).toEqual(await subShown(s.customerId, s.id));
    expect(await eventsOf(t.db, s.customerId, 'subscription.past_due')).toHaveLength(1);

    // Paid, then failing again: a new entry, a new grace.
    await deliver(updatedEvent(s.stripeId, { status: 'active' })).expect(200);
    await deliver(updatedEvent(s.stripeId, { status: 'past_due' })).expect(200);
    expect(await eventsOf(t.db, s.customerId, 'subscription.past_due')).toHaveLength(2);
    expect(await eventsOf(t.db, s.customerId, 'license.grace_started')).toHaveLength(2);
  });

  test('when applying a Stripe event fails at commit, then nothing is applied or written, and Stripe’s retry writes the events once', async () => {
    const s = await stripeSubscription();
    const pastDue = updatedEvent(s.stripeId, { status: 'past_due' });
    for (const fault of ['subscription.past_due', 'license.grace_started', 'subscriptions']) {
      await faults.fail(fault, s.customerId);
      expect((await deliver(pastDue)).status).toBe(500);
      await faults.clear();
      expect(await subShown(s.customerId, s.id)).toMatchObject({ status: 'active' });
      expect(await subTypes(s.customerId)).toEqual(['subscription.created']);
      expect(await processed(pastDue.id)).toBeNull();
    }
    expect((await deliver(pastDue).expect(200)).body.result).toBe('processed');
    expect((await subTypes(s.customerId)).sort()).toEqual(['license.grace_started', 'subscription.created', 'subscription.past_due']);
  });

  test('when Stripe ends a subscription, then one subscription.canceled with the subscription as shown', async () => {
    const s = await stripeSubscription();
    stripe.setSubscription(s.stripeId, { status: 'canceled', canceled_at: clock });
    const e = event('customer.subscription.deleted', { ...stripe.subscriptions.get(s.stripeId) });
    await deliver(e).expect(200);
    await deliver(e).expect(200);
    const canceled = await eventsOf(t.db, s.customerId, 'subscription.canceled');
    expect(canceled).toHaveLength(1);
    expect(canceled[0]!.data).toEqual(await subShown(s.customerId, s.id));
    expect(await subTypes(s.customerId)).toEqual(['subscription.created', 'subscription.canceled']);
  });

  test('when an admin cancels a Stripe subscription, then one subscription.updated (at period end), then one subscription.canceled (at once)', async () => {
    const s = await stripeSubscription();
    await request(t.app).delete(`/api/customers/${s.customerId}/subscriptions/${s.id}`).set(admin).expect(200);
    const updated = await eventsOf(t.db, s.customerId, 'subscription.updated');
    expect(updated).toHaveLength(1);
    expect(updated[0]!.data).toMatchObject({ cancel_at_period_end: true });
    const res = await request(t.app).delete(`/api/customers/${s.customerId}/subscriptions/${s.id}?immediately=true`).set(admin).expect(200);
    const canceled = await eventsOf(t.db, s.customerId, 'subscription.canceled');
    expect(canceled.map((e) => e.data)).toEqual([res.body.subscription]);
  });

  test('when reconciliation repairs drift, then it writes the change’s event once; a second run writes none', async () => {
    const s = await stripeSubscription();
    stripe.setSubscription(s.stripeId, { cancel_at_period_end: true });
    await request(t.app).post('/api/stripe/reconcile').set(admin).expect(200);
    const updated = await eventsOf(t.db, s.customerId, 'subscription.updated');
    expect(updated).toHaveLength(1);
    expect(updated[0]!.data).toEqual(await subShown(s.customerId, s.id));
    await request(t.app).post('/api/stripe/reconcile').set(admin).expect(200);
    expect(await subTypes(s.customerId)).toEqual(['subscription.created', 'subscription.updated']);
  });

  test('when Stripe deletes the customer, then one customer.updated shows it unlinked', async () => {
    const c = await createStripeCustomer(t);
    const before = await eventsOf(t.db, c.id, 'customer.updated');
    const e = event('customer.deleted', { id: c.stripeId, object: 'customer', deleted: true });
    await deliver(e).expect(200);
    await deliver(e).expect(200);
    const updated = (await eventsOf(t.db, c.id, 'customer.updated')).slice(before.length);
    expect(updated).toHaveLength(1);
    expect(updated[0]!.data).toEqual((await request(t.app).get(`/api/customers/${c.id}`).set(admin).expect(200)).body.customer);
    expect(updated[0]!.data.stripe_customer_id).toBeNull();
  });
});

describe('invoices', () => {
  const invoiceOf = (stripeId: string, status: 'open' | 'paid', extra: Record<string, unknown>) => ({ ...stripe.invoice(stripeId, status), ...extra });

  test('when an invoice payment fails and then the invoice is paid, then invoice.payment_failed and invoice.paid once each, with the invoice summary', async () => {
    const s = await stripeSubscription();
    const retryAt = clock + 3 * 86_400;
    stripe.setSubscription(s.stripeId, { status: 'past_due' });
    const failedInvoice = invoiceOf(s.stripeId, 'open', {
      amount_paid: 0,
      amount_remaining: 4900,
      attempt_count: 1,
      next_payment_attempt: retryAt,
      hosted_invoice_url: 'https://invoice.stripe.com/i/acct_1/test_1',
      number: 'ABC-0001',
    });
    const failed = event('invoice.payment_failed', failedInvoice);
    await deliver(failed).expect(200);
    expect((await deliver(failed).expect(200)).body.result).toBe('duplicate');
    const stripeCustomer = (await t.db('customers').where({ id: s.customerId }).first())!.stripe_customer_id;
    expect(failedInvoice.customer).toBe(stripeCustomer);
    const summary = {
      id: failedInvoice.id,
      customer_id: s.customerId,
      subscription_id: s.id,
      stripe_subscription_id: s.stripeId,
      number: 'ABC-0001',
      status: 'open',
      amount_due: 4900,
      amount_paid: 0,
      amount_remaining: 4900,
      currency: 'usd',
      attempt_count: 1,
      next_payment_attempt: new Date(retryAt * 1000).toISOString(),
      hosted_invoice_url: 'https://invoice.stripe.com/i/acct_1/test_1',
    };
    expect((await eventsOf(t.db, s.customerId, 'invoice.payment_failed')).map((e) => e.data)).toEqual([summary]);
    // The same event moved the subscription (re-read from Stripe) into past_due.
    expect((await subTypes(s.customerId)).sort()).toEqual(['invoice.payment_failed', 'license.grace_started', 'subscription.created', 'subscription.past_due']);

    stripe.setSubscription(s.stripeId, { status: 'active' });
    const paidInvoice = { ...failedInvoice, status: 'paid', amount_paid: 4900, amount_remaining: 0, attempt_count: 2, next_payment_attempt: null };
    const paid = event('invoice.paid', paidInvoice);
    await deliver(paid).expect(200);
    await deliver(paid).expect(200);
    expect((await eventsOf(t.db, s.customerId, 'invoice.paid')).map((e) => e.data)).toEqual([
      { ...summary, status: 'paid', amount_paid: 4900, amount_remaining: 0, attempt_count: 2, next_payment_attempt: null },
    ]);
    const updated = await eventsOf(t.db, s.customerId, 'subscription.updated');
    expect(updated.map((e) => e.data)).toEqual([await subShown(s.customerId, s.id)]);
  });

  test('when an invoice event fails at commit, then neither the invoice event nor the subscription change is kept', async () => {
    const s = await stripeSubscription();
    stripe.setSubscription(s.stripeId, { status: 'past_due' });
    const failed = event('invoice.payment_failed', invoiceOf(s.stripeId, 'open', { attempt_count: 1 }));
    for (const fault of ['invoice.payment_failed', 'subscriptions']) {
      await faults.fail(fault, s.customerId);
      expect((await deliver(failed)).status).toBe(500);
      await faults.clear();
      expect(await subTypes(s.customerId)).toEqual(['subscription.created']);
      expect(await subShown(s.customerId, s.id)).toMatchObject({ status: 'active' });
    }
    await deliver(failed).expect(200);
    expect(await eventsOf(t.db, s.customerId, 'invoice.payment_failed')).toHaveLength(1);
  });

  test('when an invoice names a Stripe customer that is not ours, then no event is written', async () => {
    const before = Number((await t.db('events').count<{ n: string }[]>({ n: '*' }))[0]!.n);
    const e = event('invoice.paid', { id: 'in_foreign', object: 'invoice', customer: 'cus_not_ours', status: 'paid', amount_due: 100, currency: 'usd' });
    await deliver(e).expect(200);
    expect(Number((await t.db('events').count<{ n: string }[]>({ n: '*' }))[0]!.n)).toBe(before);
  });
});

describe('usage Stripe refused', () => {
  const usageFailed = (c: CreatedCustomer) => eventsOf(t.db, c.id, 'usage.forwarding_failed');
  const stateOf = async (ids: string[]) => [...new Set((await t.db('usage_outbox').whereIn('id', ids)).map((r) => r.state))];

  test('when Stripe refuses a call carrying two customers’ events, then one usage.forwarding_failed per customer, in the transaction that fails them', async () => {
    const a = await createStripeCustomer(t);
    const b = await createStripeCustomer(t);
    const aIds = await reportBatch(t, a, 2);
    const bIds = await reportBatch(t, b, 3, 'api_calls');
    stripe.failNext(/meter_event_stream/, 1, { status: 400, type: 'invalid_request_error', message: 'events[0].payload: invalid' });
    expect(await t.c.forwarder.runOnce()).toMatchObject({ failed: 5 });
    for (const [c, ids] of [
      [a, aIds],
      [b, bIds],
    ] as const) {
      const events = await usageFailed(c);
      expect(events).toHaveLength(1);
      expect(events[0]!.data).toMatchObject({
        customer_id: c.id,
        count: ids.length,
        metric: 'api_calls',
        metrics: ['api_calls'],
        event_ids: [...ids].sort(),
        source: 'forwarder',
        http_status: 400,
      });
      expect(events[0]!.data.reason).toContain('events[0].payload: invalid');
    }
  });

  test('when parking events as failed cannot commit, then they stay pending with no event; the next failure writes it once', async () => {
    const a = await createStripeCustomer(t);
    const ids = await reportBatch(t, a, 2);
    for (const fault of ['usage.forwarding_failed', 'usage_outbox']) {
      // (On usage_outbox: only the write that fails them; the claim writes the rows too.)
      await faults.fail(fault, a.id, fault === 'usage_outbox' ? 'failed' : undefined);
      stripe.failNext(/meter_event_stream/, 1, { status: 400, type: 'invalid_request_error', message: 'refused' });
      // The outcome is written again until the lease ends (FORWARDER_LEASE_SECONDS), then left.
      expect(await t.c.forwarder.runOnce()).toMatchObject({ failed: 0 });
      await faults.clear();
      expect(await stateOf(ids)).toEqual(['pending']);
      expect(await usageFailed(a)).toEqual([]);
      await t.db('usage_outbox').whereIn('id', ids).update({ next_attempt_at: t.db.fn.now(), attempts: 0 });
    }
    stripe.failNext(/meter_event_stream/, 1, { status: 400, type: 'invalid_request_error', message: 'refused' });
    expect(await t.c.forwarder.runOnce()).toMatchObject({ failed: 2 });
    expect((await usageFailed(a)).map((e) => e.data.count)).toEqual([2]);
  }, 40_000);

  test('when retries run out, then the last failure writes the event, the retries none', async () => {
    const a = await createStripeCustomer(t);
    const ids = await reportBatch(t, a, 1);
    stripe.failNext(/meter_event_stream/, 2, { status: 500, type: 'api_error', message: 'Stripe is down' });
    expect(await t.c.forwarder.runOnce()).toMatchObject({ retried: 1 });
    expect(await usageFailed(a)).toEqual([]);
    await t.db('usage_outbox').whereIn('id', ids).update({ next_attempt_at: t.db.fn.now() });
    expect(await t.c.forwarder.runOnce()).toMatchObject({ failed: 1 });
    expect((await usageFailed(a)).map((e) => e.data)).toEqual([expect.objectContaining({ count: 1, event_ids: ids, http_status: 500 })]);
  });

  test('when Stripe’s error report rejects accepted events, then one usage.forwarding_failed per customer; its duplicate writes none', async () => {
    const a = await createStripeCustomer(t);
    const b = await createStripeCustomer(t);
    const aIds = await reportBatch(t, a, 3);
    const bIds = await reportBatch(t, b, 1);
    await t.c.forwarder.runOnce();
    const report = event('v1.billing.meter.error_report_triggered', {
      developer_message_summary: '3 meter events failed validation',
      meter: 'mtr_events',
      reason: {
        error_count: 3,
        error_types: [
          {
            code: 'meter_event_customer_not_found',
            error_count: 2,
            sample_errors: [
              { error_message: 'No customer', request: { identifier: aIds[0] } },
              { error_message: 'No customer', request: { identifier: bIds[0] } },
            ],
          },
          { code: 'timestamp_too_far_in_past', error_count: 1, sample_errors: [{ error_message: 'Too old', request: { identifier: aIds[1] } }] },
        ],
      },
    });
    for (const fault of ['usage.forwarding_failed', 'usage_outbox']) {
      await faults.fail(fault, a.id);
      expect((await deliver(report)).status).toBe(500);
      await faults.clear();
      expect(await stateOf([...aIds, ...bIds])).toEqual(['sent']);
      expect([...(await usageFailed(a)), ...(await usageFailed(b))]).toEqual([]);
    }
    await deliver(report).expect(200);
    expect((await deliver(report).expect(200)).body.result).toBe('duplicate');
    const [ea] = await usageFailed(a);
    expect(await usageFailed(a)).toHaveLength(1);
    expect(ea!.data).toMatchObject({
      count: 2,
      event_ids: [aIds[0], aIds[1]].sort(),
      metric: 'api_calls',
      source: 'stripe_error_report',
      stripe_event_id: report.id,
      meter: 'mtr_events',
    });
    expect(ea!.data.reason).toContain('STRIPE_REJECTED meter_event_customer_not_found: No customer');
    expect(ea!.data.reason).toContain('STRIPE_REJECTED timestamp_too_far_in_past: Too old');
    expect((await usageFailed(b)).map((e) => e.data)).toEqual([expect.objectContaining({ count: 1, event_ids: [bIds[0]] })]);
  });
});

test('no event holds a secret: no API key, Stripe key or webhook secret anywhere in the events table', async () => {
  const c = await createCustomer(t);
  const text = await allEventsText();
  expect(text).toContain(c.keyId);
  // (The key's `start`, its first 8 characters, is shown by the API and may appear; the rest never.)
  for (const secret of [c.apiKey.split('_').slice(2).join('_'), 'sk_test_eventsemitted123', SECRET]) expect(text.includes(secret)).toBe(false);
});
