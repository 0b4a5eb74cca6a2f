/**
 * The usage forwarder's leases with real processes: an instance killed with Stripe calls in flight
 * (its events are sent by another instance within seconds, not after a long lease), and one stopped
 * with SIGTERM with calls in flight (nothing is left leased). The instances run with the default
 * FORWARDER_LEASE_SECONDS.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createStripeCustomer, reportBatch } from '../helpers/factories';
import { FakeStripe, startFakeStripe } from '../helpers/fake-stripe';
import { freePort, type Running, startServer, waitFor } from '../helpers/server-process';
import { createTestApp, TestApp, testDatabaseUrl } from '../helpers/test-app';
import { clearPendingForwarding } from '../helpers/forwarding-state';

let stripe: FakeStripe;
let t: TestApp;
const running: Running[] = [];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-fwd-'));
const stripeEnv = () => ({ STRIPE_SECRET_KEY: 'sk_test_leases123', STRIPE_API_BASE: stripe.url, FORWARDER_CONCURRENCY: '2' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  stripe = await startFakeStripe();
  // Makes the data; its own forwarder is not started.
  t = await createTestApp(stripeEnv());
});
afterAll(async () => {
  for (const r of running) if (r.child.exitCode === null) r.child.kill('SIGKILL');
  await t.close();
  await stripe.close();
  fs.rmSync(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  stripe.clearFailures();
  // Other files leave events behind: only this file's count.
  await clearPendingForwarding(t.db);
});

/** Stream calls since `from` (the fake Stripe keeps every one). */
const callsSince = (from: number) => stripe.streamCalls().slice(from);
const identifiers = (from: number) => callsSince(from).flatMap((c) => (c.body as { events: { identifier: string }[] }).events.map((e) => e.identifier));

async function instanceWithCallsInFlight(ids: string[], from: number): Promise<Running> {
  const r = startServer({
    NODE_ENV: 'test',
    DATABASE_URL: testDatabaseUrl(),
    PORT: String(await freePort()),
    DATA_DIR: dir,
    ADMIN_API_TOKEN: randomBytes(32).toString('hex'),
    ...stripeEnv(),
  });
  running.push(r);
  await waitFor(r, /listening/, 60_000);
  for (const end = Date.now() + 20_000; callsSince(from).length < 2 && Date.now() < end;) await sleep(10);
  expect(callsSince(from)).toHaveLength(2);
  // Its whole claim is leased: two calls at Stripe, the rest queued behind them.
  const leased = await t
    .db('usage_outbox')
    .whereIn('id', ids)
    .where({ state: 'pending' })
    .where('next_attempt_at', '>', t.db.fn.now())
    .count<{ n: string }[]>('* as n');
  expect(Number(leased[0]!.n)).toBe(ids.length);
  return r;
}

const sentCount = async (ids: string[]) =>
  Number((await t.db('usage_outbox').whereIn('id', ids).where({ state: 'sent' }).count<{ n: string }[]>('* as n'))[0]!.n);

test('when an instance is killed with calls in flight, then another instance sends its events within 15 seconds, each once', async () => {
  const c = await createStripeCustomer(t);
  const ids = await reportBatch(t, c, 600, 'api_calls', 'kill');
  // Its calls never reach Stripe's books and never end: only a resend can deliver them.
  stripe.failAlways(/meter_event_stream/, 'stall');
  const from = stripe.streamCalls().length;
  const a = await instanceWithCallsInFlight(ids, from);
  const stalled = identifiers(from);
  expect(stalled).toHaveLength(200);
  a.child.kill('SIGKILL');
  await a.exited;
  const killed = Date.now();
  stripe.clearFailures();

  const b = await createTestApp(stripeEnv());
  try {
    b.c.forwarder.start();
    while ((await sentCount(ids)) < ids.length && Date.now() - killed < 15_000) await sleep(100);
    expect(await sentCount(ids)).toBe(ids.length);
    expect(Date.now() - killed).toBeLessThan(15_000);
    // Sent by b: what a had at Stripe (stalled) among them.
    expect(new Set(identifiers(from + 2))).toEqual(new Set(ids));
  } finally {
    await b.close();
  }
  expect(ids.every((id) => stripe.held.has(id))).toBe(true);
  expect(stalled.every((id) => stripe.held.get(id)?.identifier === id)).toBe(true);
  expect(stripe.duplicates()).toBe(0);
}, 90_000);

test('when an instance is stopped with SIGTERM with calls in flight, then their events are marked sent, the rest given back, nothing left leased', async () => {
  const c = await createStripeCustomer(t);
  const ids = await reportBatch(t, c, 600, 'api_calls', 'term');
  stripe.setLatency(1500, 2000);
  const from = stripe.streamCalls().length;
  const a = await instanceWithCallsInFlight(ids, from);
  const carried = identifiers(from);
  expect(carried).toHaveLength(200);
  a.child.kill('SIGTERM');
  expect(await a.exited).toBe(0);

  const rows: { id: string; state: string; attempts: number; leased: boolean }[] = await t
    .db('usage_outbox')
    .whereIn('id', ids)
    .select('id', 'state', 'attempts', t.db.raw('next_attempt_at > now() as leased'));
  expect(rows.filter((r) => r.leased)).toEqual([]);
  const sent = rows.filter((r) => r.state === 'sent').map((r) => r.id);
  expect(new Set(sent)).toEqual(new Set(carried));
  // Given back as never attempted: due at once for any instance.
  const rest = rows.filter((r) => r.state !== 'sent');
  expect(rest).toHaveLength(ids.length - carried.length);
  expect(rest.every((r) => r.state === 'pending' && r.attempts === 0)).toBe(true);
}, 90_000);
