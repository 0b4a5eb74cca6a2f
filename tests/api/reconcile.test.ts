import { spawn } from 'node:child_process';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
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

  expect((await t.db('subscriptions').where({ id: drifted.id }).first()).status).toBe('past_due');
  expect((await t.db('subscriptions').where({ id: gone.id }).first()).status).toBe('canceled');
  const restored = await t.db('subscriptions').where({ stripe_subscription_id: onlyInStripe.body.stripe_subscription_id }).first();
  expect(restored).toMatchObject({ id: onlyInStripe.id, customer_id: onlyInStripe.customerId, status: 'active' });

  const again = await request(t.app).post('/api/stripe/reconcile').set(admin);
  expect(again.body.changes.filter((c: { stripe_subscription_id: string }) => [drifted, gone, onlyInStripe, clean].some((s) => s.body.stripe_subscription_id === c.stripe_subscription_id))).toEqual([]);
});

test('when `npm run reconcile` runs, then it prints what it checked and changed', async () => {
  const s = await subscribe(t, { plan: await stripePlan() });
  stripe.setSubscription(s.body.stripe_subscription_id, { status: 'unpaid' });
  const out = await new Promise<{ code: number | null; text: string }>((resolve) => {
    const child = spawn(process.execPath, ['--require', 'tsx/cjs', 'src/cli/reconcile.ts'], {
      cwd: path.resolve(__dirname, '..', '..'),
      env: { ...process.env, ...env(), NODE_ENV: 'test', DATABASE_URL: testDatabaseUrl() },
    });
    let text = '';
    child.stdout.on('data', (d) => (text += d));
    child.stderr.on('data', (d) => (text += d));
    child.on('exit', (code) => resolve({ code, text }));
  });
  expect(out.code).toBe(0);
  expect(out.text).toContain(s.body.stripe_subscription_id);
  expect(out.text).toMatch(/Checked \d+ Stripe subscription\(s\); \d+ change\(s\)\./);
  expect((await t.db('subscriptions').where({ id: s.id }).first()).status).toBe('unpaid');
});
