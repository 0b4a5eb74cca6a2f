import { spawn } from 'node:child_process';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import Stripe from 'stripe';
import request from 'supertest';
import { createPlan, subscribe } from '../helpers/factories';
import { FakeStripe, startFakeStripe } from '../helpers/fake-stripe';
import { createTestApp, TestApp, testDatabaseUrl } from '../helpers/test-app';

let stripe: FakeStripe;
let t: TestApp;
let admin: Record<string, string>;
const env = () => ({ STRIPE_SECRET_KEY: 'sk_test_reconcile', STRIPE_API_BASE: stripe.url, FORWARDER_ENABLED: 'false' });

beforeAll(async () => {
  stripe = await startFakeStripe();
  t = await createTestApp(env());
  admin = { Authorization: `Bearer ${t.adminToken}` };
});
afterAll(async () => {
  await t.close();
  await stripe.close();
});

const stripePlan = () => createPlan(t, { stripe_price_id: `price_${randomBytes(5).toString('hex')}` });
const priceOf = async (plan: string) => (await t.db('plans').where({ code: plan }).first())!.stripe_price_id as string;
const stripeCustomerOf = async (customerId: string) => (await t.db('customers').where({ id: customerId }).first())!.stripe_customer_id as string;
/** stripe-node against the fake, as another integration in the same Stripe account would use it. */
const otherApp = () => new Stripe('sk_test_other_app', { host: '127.0.0.1', port: Number(new URL(stripe.url).port), protocol: 'http' });

function runCli(): Promise<{ code: number | null; text: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--require', 'tsx/cjs', 'src/cli/reconcile.ts'], {
      cwd: path.resolve(__dirname, '..', '..'),
      env: { ...process.env, ...env(), NODE_ENV: 'test', DATABASE_URL: testDatabaseUrl() },
    });
    let text = '';
    child.stdout.on('data', (d) => (text += d));
    child.stderr.on('data', (d) => (text += d));
    child.on('exit', (code) => resolve({ code, text }));
  });
}

test('when local state drifted from Stripe, then reconciliation repairs it and reports each change', async () => {
  const drifted = await subscribe(t, { plan: await stripePlan() });
  const gone = await subscribe(t, { plan: await stripePlan() });
  const plan = await stripePlan();
  const onlyInStripe = await subscribe(t, { plan });
  const clean = await subscribe(t, { plan: await stripePlan() });

  // Drift: a missed webhook, a subscription deleted in Stripe, one we never recorded.
  stripe.setSubscription(drifted.body.stripe_subscription_id, { status: 'past_due' });
  stripe.subscriptions.delete(gone.body.stripe_subscription_id);
  await t.db('subscriptions').where({ id: onlyInStripe.id }).delete();

  const res = await request(t.app).post('/api/stripe/reconcile').set(admin);
  expect(res.status).toBe(200);
  const byStripeId = Object.fromEntries(res.body.changes.map((c: { stripe_subscription_id: string }) => [c.stripe_subscription_id, c]));
  expect(byStripeId[drifted.body.stripe_subscription_id]).toMatchObject({ change: 'updated', from: 'active', to: 'past_due' });
  expect(byStripeId[gone.body.stripe_subscription_id]).toMatchObject({ change: 'canceled: Stripe no longer has it', to: 'canceled' });
  expect(byStripeId[onlyInStripe.body.stripe_subscription_id]).toMatchObject({ change: 'added', to: 'active' });
  expect(byStripeId[clean.body.stripe_subscription_id]).toBeUndefined();

  expect((await t.db('subscriptions').where({ id: drifted.id }).first())!.status).toBe('past_due');
  expect((await t.db('subscriptions').where({ id: gone.id }).first())!.status).toBe('canceled');
  const restored = await t.db('subscriptions').where({ stripe_subscription_id: onlyInStripe.body.stripe_subscription_id }).first();
  expect(restored).toMatchObject({ id: onlyInStripe.id, customer_id: onlyInStripe.customerId, status: 'active' });

  const again = await request(t.app).post('/api/stripe/reconcile').set(admin);
  expect(
    again.body.changes.filter((c: { stripe_subscription_id: string }) =>
      [drifted, gone, onlyInStripe, clean].some((s) => s.body.stripe_subscription_id === c.stripe_subscription_id),
    ),
  ).toEqual([]);
});

test('when `npm run reconcile` runs, then it prints what it checked and changed', async () => {
  const s = await subscribe(t, { plan: await stripePlan() });
  stripe.setSubscription(s.body.stripe_subscription_id, { status: 'unpaid' });
  const out = await runCli();
  expect(out.code).toBe(0);
  expect(out.text).toContain(s.body.stripe_subscription_id);
  expect(out.text).toMatch(/Checked \d+ Stripe subscription\(s\); \d+ change\(s\)\./);
  expect((await t.db('subscriptions').where({ id: s.id }).first())!.status).toBe('unpaid');
});

test('when another app’s subscription, with its own ids in the metadata, sits among ours, then ours are repaired, it is adopted, and the call succeeds', async () => {
  const first = await subscribe(t, { plan: await stripePlan() });
  const foreignPlan = await stripePlan();
  const host = await subscribe(t, { plan: foreignPlan });
  const last = await subscribe(t, { plan: await stripePlan() });
  // On one of our Stripe customers, with our price: the customer pays for it, whatever ids its metadata holds.
  const foreign = await otherApp().subscriptions.create({
    customer: await stripeCustomerOf(host.customerId),
    items: [{ price: await priceOf(foreignPlan) }],
    metadata: { customer_id: '10234', subscription_id: 'SUB-2291', plan_code: foreignPlan },
  });
  stripe.setSubscription(first.body.stripe_subscription_id, { status: 'past_due' });
  stripe.setSubscription(last.body.stripe_subscription_id, { status: 'unpaid' });

  const res = await request(t.app).post('/api/stripe/reconcile').set(admin);
  expect(res.status).toBe(200);
  const byStripeId = Object.fromEntries(res.body.changes.map((c: { stripe_subscription_id: string }) => [c.stripe_subscription_id, c]));
  const adopted = (await t.db('subscriptions').where({ stripe_subscription_id: foreign.id }).first())!;
  expect(byStripeId[foreign.id]).toEqual({ subscription_id: adopted.id, stripe_subscription_id: foreign.id, change: 'added', to: 'active' });
  expect(adopted.customer_id).toBe(host.customerId);
  expect(byStripeId[first.body.stripe_subscription_id]).toMatchObject({ change: 'updated', to: 'past_due' });
  expect(byStripeId[last.body.stripe_subscription_id]).toMatchObject({ change: 'updated', to: 'unpaid' });
  expect((await t.db('subscriptions').where({ id: first.id }).first())!.status).toBe('past_due');
  expect((await t.db('subscriptions').where({ id: last.id }).first())!.status).toBe('unpaid');
  expect(await t.db('subscriptions').where({ customer_id: host.customerId })).toHaveLength(2);
  // Its metadata is the other app's: nothing is written back to Stripe.
  expect(stripe.requests.filter((r) => r.method === 'POST' && r.path === `/v1/subscriptions/${foreign.id}`)).toEqual([]);

  stripe.setSubscription(host.body.stripe_subscription_id, { cancel_at_period_end: true });
  const out = await runCli();
  expect(out.code).toBe(0);
  expect((await t.db('subscriptions').where({ id: host.id }).first())!.cancel_at_period_end).toBe(true);
  stripe.subscriptions.delete(foreign.id);
});

test('when one subscription of ours cannot be applied, then it is reported as failed and the rest are still repaired', async () => {
  const broken = await subscribe(t, { plan: await stripePlan() });
  const drifted = await subscribe(t, { plan: await stripePlan() });
  // A status our schema does not know (Stripe may add one): writing it fails in the database.
  stripe.setSubscription(broken.body.stripe_subscription_id, { status: 'pending_renewal' });
  stripe.setSubscription(drifted.body.stripe_subscription_id, { status: 'past_due' });

  const res = await request(t.app).post('/api/stripe/reconcile').set(admin);
  expect(res.status).toBe(200);
  const byStripeId = Object.fromEntries(res.body.changes.map((c: { stripe_subscription_id: string }) => [c.stripe_subscription_id, c]));
  expect(byStripeId[broken.body.stripe_subscription_id]).toEqual({
    subscription_id: broken.id,
    stripe_subscription_id: broken.body.stripe_subscription_id,
    change: 'failed: INTERNAL_ERROR: the subscription could not be applied',
  });
  expect(JSON.stringify(res.body)).not.toMatch(/insert into|subscriptions_status_check/);
  expect(byStripeId[drifted.body.stripe_subscription_id]).toMatchObject({ change: 'updated', to: 'past_due' });
  expect((await t.db('subscriptions').where({ id: broken.id }).first())!.status).toBe('active');
  expect((await t.db('subscriptions').where({ id: drifted.id }).first())!.status).toBe('past_due');
  expect(t.logs.some((l) => l.includes(broken.body.stripe_subscription_id) && l.includes('subscriptions_status_check'))).toBe(true);
  stripe.setSubscription(broken.body.stripe_subscription_id, { status: 'active' });
});
