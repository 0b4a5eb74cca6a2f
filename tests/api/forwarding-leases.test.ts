/**
 * Short leases never cost exclusivity on a healthy instance: a Stripe call that outlasts the lease
 * keeps its events leased (renewed while it runs), so another instance claims none of them, and
 * Stripe receives each once.
 */
import { createStripeCustomer, reportBatch } from '../helpers/factories';
import { FakeStripe, startFakeStripe } from '../helpers/fake-stripe';
import { createTestApp, TestApp } from '../helpers/test-app';
import { clearPendingForwarding } from '../helpers/forwarding-state';

let stripe: FakeStripe;
const apps: TestApp[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  stripe = await startFakeStripe();
});
afterAll(async () => {
  for (const a of apps) await a.close();
  await stripe.close();
});

const instance = async () => {
  const app = await createTestApp({
    STRIPE_SECRET_KEY: 'sk_test_leases123',
    STRIPE_API_BASE: stripe.url,
    STRIPE_TIMEOUT_MS: '10000',
    FORWARDER_LEASE_SECONDS: '5',
    FORWARDER_CONCURRENCY: '1',
    FORWARDER_BATCH_SIZE: '100',
  });
  apps.push(app);
  return app;
};

test('when a Stripe call outlasts the lease, then the lease is renewed under it and no other instance takes its events', async () => {
  const a = await instance();
  const b = await instance();
  await clearPendingForwarding(a.db);
  const ids = await reportBatch(a, await createStripeCustomer(a), 100, 'api_calls', 'long');

  // Stripe takes the call at once and answers after 7 s: longer than the 5 s lease.
  stripe.setLatency(7000, 7000);
  const from = stripe.streamCalls().length;
  const run = a.c.forwarder.runOnce();
  for (const end = Date.now() + 5000; stripe.streamCalls().length === from && Date.now() < end;) await sleep(10);
  const started = Date.now();
  let claimedByB = 0;
  while (Date.now() - started < 6500) {
    claimedByB += (await b.c.forwarder.runOnce()).claimed;
    await sleep(250);
  }
  // Past the first lease's end, the events are still leased (renewed), not due.
  const due = await a.db('usage_outbox').whereIn('id', ids).where('next_attempt_at', '<=', a.db.fn.now()).count<{ n: string }[]>('* as n');
  expect(Number(due[0]!.n)).toBe(0);
  expect(claimedByB).toBe(0);

  expect(await run).toMatchObject({ claimed: 100, sent: 100, calls: 1 });
  expect(stripe.streamCalls().slice(from)).toHaveLength(1);
  expect(ids.every((id) => stripe.held.has(id))).toBe(true);
  expect(stripe.duplicates()).toBe(0);
}, 30_000);
