/**
 * A subscription made by another tool (or in the Dashboard) for a customer of ours, on a price of
 * one of our plans, is adopted whatever its metadata holds: the customer pays, so the service must
 * know it. Its metadata is left alone (nothing is written to Stripe). The subscription is served
 * by the fake Stripe in the shape of stripe-node's published `Stripe.Subscription` type (the
 * compiler holds the fixture to every field), and arrives through signed webhooks and through
 * reconciliation.
 */
import { randomBytes } from 'node:crypto';
import Stripe from 'stripe';
import request from 'supertest';
import { createPlan, createStripeCustomer, subscribe } from '../helpers/factories';
import type { FakeStripe, FakeSubscription } from '../helpers/fake-stripe';
import { deliverEvent, startStripeApp, type StripeApp } from '../helpers/stripe-app';
import type { TestApp } from '../helpers/test-app';

let app: StripeApp;
let stripe: FakeStripe;
let t: TestApp;
let admin: Record<string, string>;

beforeAll(async () => {
  ({ stripe, t, admin } = app = await startStripeApp());
});
afterAll(() => app.close());

/** A subscription as Stripe's API reference publishes it (API 2025-03-31+: periods on the items). */
function publishedSubscription(o: { customer: string; price: string; metadata: Record<string, string> }): Stripe.Subscription {
  const now = Math.floor(Date.now() / 1000);
  const id = `sub_${randomBytes(12).toString('hex')}`;
  const price: Stripe.Price = {
    id: o.price,
    object: 'price',
    active: true,
    billing_scheme: 'per_unit',
    created: now - 86_400,
    currency: 'usd',
    custom_unit_amount: null,
    livemode: false,
    lookup_key: null,
    metadata: {},
    nickname: null,
    product: 'prod_NWjs8kKbJWmuuc',
    recurring: { interval: 'month', interval_count: 1, meter: null, trial_period_days: null, usage_type: 'licensed' },
    tax_behavior: 'unspecified',
    tiers_mode: null,
    transform_quantity: null,
    type: 'recurring',
    unit_amount: 1000,
    // A decimal string on the wire; stripe-node's type is its Decimal class.
    unit_amount_decimal: '1000' as unknown as Stripe.Price['unit_amount_decimal'],
  };
  const item: Stripe.SubscriptionItem = {
    id: `si_${randomBytes(7).toString('hex')}`,
    object: 'subscription_item',
    billing_thresholds: null,
    created: now,
    current_period_end: now + 30 * 86_400,
    current_period_start: now,
    current_trial: null,
    discounts: [],
    metadata: {},
    // The legacy plan object Stripe still sends beside the price.
    plan: {
      id: o.price,
      object: 'plan',
      active: true,
      amount: 1000,
      amount_decimal: price.unit_amount_decimal,
      billing_scheme: 'per_unit',
      created: price.created,
      currency: 'usd',
      interval: 'month',
      interval_count: 1,
      livemode: false,
      metadata: {},
      meter: null,
      nickname: null,
      product: 'prod_NWjs8kKbJWmuuc',
      tiers_mode: null,
      transform_usage: null,
      trial_period_days: null,
      usage_type: 'licensed',
    },
    price,
    quantity: 1,
    subscription: id,
    tax_rates: [],
  };
  return {
    id,
    object: 'subscription',
    application: 'ca_other_tool',
    application_fee_percent: null,
    automatic_tax: { disabled_reason: null, enabled: false, liability: null },
    billing_cycle_anchor: now,
    billing_cycle_anchor_config: null,
    billing_mode: { flexible: null, type: 'classic' },
    billing_schedules: [],
    billing_thresholds: null,
    cancel_at: null,
    cancel_at_period_end: false,
    canceled_at: null,
    cancellation_details: { comment: null, feedback: null, feedback_option: null, reason: null },
    collection_method: 'charge_automatically',
    created: now,
    currency: 'usd',
    customer: o.customer,
    customer_account: null,
    days_until_due: null,
    default_payment_method: null,
    default_source: null,
    default_tax_rates: [],
    description: null,
    discounts: [],
    ended_at: null,
    invoice_settings: { account_tax_ids: null, custom_fields: null, description: null, footer: null, issuer: { type: 'self' } },
    items: { object: 'list', data: [item], has_more: false, url: `/v1/subscription_items?subscription=${id}` },
    latest_invoice: `in_${randomBytes(8).toString('hex')}`,
    livemode: false,
    managed_payments: null,
    metadata: o.metadata,
    next_pending_invoice_item_invoice: null,
    on_behalf_of: null,
    pause_collection: null,
    payment_settings: { payment_method_options: null, payment_method_types: null, save_default_payment_method: 'off' },
    pending_invoice_item_interval: null,
    pending_setup_intent: null,
    pending_update: null,
    schedule: null,
    start_date: now,
    status: 'active',
    test_clock: null,
    transfer_data: null,
    trial_end: null,
    trial_settings: { end_behavior: { billing_cycle_anchor: 'unchanged', missing_payment_method: 'create_invoice' } },
    trial_start: null,
  };
}

/** Another tool's subscription, held by the fake Stripe as Stripe would hold it. */
async function foreignSubscription(metadata: Record<string, string>) {
  const plan = await createPlan(t, { stripe_price_id: `price_${randomBytes(5).toString('hex')}` });
  const price = (await t.db('plans').where({ code: plan }).first())!.stripe_price_id as string;
  // A customer of ours, linked to its Stripe customer, that pays through the other tool only.
  const customer = await createStripeCustomer(t);
  const host = { customerId: customer.id, plan, customer };
  // Without a subscription of ours, its license is refused: what the customer met.
  expect((await request(t.app).get('/api/licenses').set('X-API-Key', customer.apiKey)).status).not.toBe(200);
  const sub = publishedSubscription({ customer: customer.stripeId, price, metadata });
  stripe.subscriptions.set(sub.id, sub as unknown as FakeSubscription);
  return { host, sub };
}

let clock = Math.floor(Date.now() / 1000);
function deliver(type: string, object: object) {
  return deliverEvent(t.app, stripe.event(type, object as Record<string, unknown>, ++clock));
}

const writesTo = (subId: string) => stripe.requests.filter((r) => r.method !== 'GET' && r.path.includes(subId));
const adoptionAudit = (subId: string) =>
  t.db('audit_log').where({ action: 'subscription.adopt', target_type: 'subscription' }).whereRaw(`details->>'stripe_subscription_id' = ?`, [subId]);

describe.each([
  ['another tool’s own ids', { subscription_id: 'SUB-2291', customer_id: '10234', plan_code: 'gold', source: 'other-tool' }],
  ['only another tool’s subscription_id', { subscription_id: 'b7a9e3f0-not-ours' }],
  ['a UUID of ours that names another subscription', { subscription_id: '' }],
  ['no metadata at all (made in the Dashboard)', {}],
])('a subscription of a known customer, on our price, with %s in its metadata', (_label, metadata) => {
  test('when its webhook arrives, then it is adopted, recorded, audited, and its metadata is not touched', async () => {
    const md: Record<string, string> = { ...metadata };
    if (md.subscription_id === '') {
      // Our own id, already taken by another row of ours: the adoption takes a new one.
      md.subscription_id = (await subscribe(t, { plan: await createPlan(t, { stripe_price_id: `price_${randomBytes(5).toString('hex')}` }) })).id;
    }
    const { host, sub } = await foreignSubscription(md);
    const res = await deliver('customer.subscription.created', sub);
    expect(res.status).toBe(200);
    expect(res.body.result).toBe('processed');

    const row = (await t.db('subscriptions').where({ stripe_subscription_id: sub.id }).first())!;
    expect(row).toMatchObject({ customer_id: host.customerId, status: 'active' });
    if (md.subscription_id) expect(row.id).not.toBe(md.subscription_id);
    const plan = (await t.db('plans').where({ id: row.plan_id }).first())!;
    expect(plan.code).toBe(host.plan);

    const audit = await adoptionAudit(sub.id);
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ outcome: 'success', target_id: row.id, actor: 'stripe' });
    expect(audit[0]!.details).toMatchObject({ customer_id: host.customerId, plan: host.plan, stripe_subscription_id: sub.id });
    const event = (await t
      .db('audit_log')
      .where({ target_type: 'stripe_event', action: 'stripe.customer.subscription.created' })
      .whereRaw(`details->>'stripe_subscription_id' = ?`, [sub.id])
      .first())!;
    expect(event.details).toMatchObject({ subscription_id: row.id, applied: 'inserted', adopted: true });

    // The customer's license is given again.
    expect((await request(t.app).get('/api/licenses').set('X-API-Key', host.customer.apiKey)).status).toBe(200);
    // The customer's own view, and what the license check reads, now know the subscription.
    const list = await request(t.app).get(`/api/customers/${host.customerId}/subscriptions`).set(admin);
    expect(list.body.data.map((s: { id: string }) => s.id)).toContain(row.id);

    // Nothing written to Stripe: the other tool's metadata is its own.
    expect(writesTo(sub.id)).toEqual([]);
    expect(stripe.subscriptions.get(sub.id)!.metadata).toEqual(md);

    // A later event updates the same row; no second adoption.
    stripe.setSubscription(sub.id, { status: 'past_due' });
    expect((await deliver('invoice.payment_failed', stripe.invoice(sub.id, 'open'))).body.result).toBe('processed');
    expect(await t.db('subscriptions').where({ stripe_subscription_id: sub.id })).toHaveLength(1);
    expect((await t.db('subscriptions').where({ stripe_subscription_id: sub.id }).first())!.status).toBe('past_due');
    expect(await adoptionAudit(sub.id)).toHaveLength(1);
    expect(writesTo(sub.id)).toEqual([]);
  });
});

test('when reconciliation finds another tool’s subscription of a known customer on our price, then it is added and audited, and Stripe is not written to', async () => {
  const { host, sub } = await foreignSubscription({ subscription_id: 'SUB-7781', customer_id: '55012' });
  const res = await request(t.app).post('/api/stripe/reconcile').set(admin);
  expect(res.status).toBe(200);
  const change = res.body.changes.find((c: { stripe_subscription_id: string }) => c.stripe_subscription_id === sub.id);
  const row = (await t.db('subscriptions').where({ stripe_subscription_id: sub.id }).first())!;
  expect(change).toEqual({ subscription_id: row.id, stripe_subscription_id: sub.id, change: 'added', to: 'active' });
  expect(row.customer_id).toBe(host.customerId);
  const audit = await adoptionAudit(sub.id);
  expect(audit).toHaveLength(1);
  expect(audit[0]).toMatchObject({ actor: 'admin', target_id: row.id });
  expect(writesTo(sub.id)).toEqual([]);
  // A second run changes nothing.
  const again = await request(t.app).post('/api/stripe/reconcile').set(admin);
  expect(again.body.changes.find((c: { stripe_subscription_id: string }) => c.stripe_subscription_id === sub.id)).toBeUndefined();
  expect(await adoptionAudit(sub.id)).toHaveLength(1);
});

describe('controls: what is still not ours', () => {
  test('when the subscription is on our price but its Stripe customer is none of ours, then it is ignored (its metadata ids name nothing)', async () => {
    const plan = await createPlan(t, { stripe_price_id: `price_${randomBytes(5).toString('hex')}` });
    const price = (await t.db('plans').where({ code: plan }).first())!.stripe_price_id as string;
    const sub = publishedSubscription({ customer: 'cus_OtherToolOnly01', price, metadata: { subscription_id: 'SUB-1', customer_id: '10234' } });
    stripe.subscriptions.set(sub.id, sub as unknown as FakeSubscription);
    const res = await deliver('customer.subscription.created', sub);
    expect(res.body.result).toBe('ignored');
    expect(await t.db('subscriptions').where({ stripe_subscription_id: sub.id })).toEqual([]);
    expect(await adoptionAudit(sub.id)).toEqual([]);
  });

  test('when the subscription is of a known customer but on a price of none of our plans, then it is ignored, whatever plan_code its metadata names', async () => {
    const { host } = await foreignSubscription({});
    const stripeCustomer = (await t.db('customers').where({ id: host.customerId }).first())!.stripe_customer_id as string;
    const sub = publishedSubscription({
      customer: stripeCustomer,
      price: 'price_other_tool_only',
      metadata: { subscription_id: 'SUB-2', plan_code: host.plan },
    });
    stripe.subscriptions.set(sub.id, sub as unknown as FakeSubscription);
    const res = await deliver('customer.subscription.created', sub);
    expect(res.body.result).toBe('ignored');
    expect(await t.db('subscriptions').where({ stripe_subscription_id: sub.id })).toEqual([]);
  });
});
