/**
 * A PostgreSQL outage (through a TCP proxy) while Stripe calls are in flight: Stripe takes the events,
 * the "sent" marks cannot be written. The forwarder keeps the outcomes and writes them as soon as
 * PostgreSQL answers, so the outbox empties within seconds of the outage ending, with no resend,
 * not when a long lease runs out.
 */
import type { Knex } from 'knex';
import type { OutboxState } from '../../src/db/tables';
import { createStripeCustomer, reportBatch } from '../helpers/factories';
import { FakeStripe, startFakeStripe } from '../helpers/fake-stripe';
import { startTcpProxy, TcpProxy } from '../helpers/tcp-proxy';
import { createTestApp, TestApp, testDatabaseUrl } from '../helpers/test-app';
import { clearPendingForwarding } from '../helpers/forwarding-state';

let proxy: TcpProxy;
let stripe: FakeStripe;
let direct: TestApp;
let viaProxy: TestApp;

const env = () => ({
  STRIPE_SECRET_KEY: 'sk_test_outage123',
  STRIPE_API_BASE: stripe.url,
  FORWARDER_BATCH_SIZE: '400',
  FORWARDER_CONCURRENCY: '4',
  FORWARDER_INTERVAL_MS: '100',
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  const real = new URL(testDatabaseUrl());
  proxy = await startTcpProxy(real.hostname, Number(real.port || 5432));
  stripe = await startFakeStripe();
  direct = await createTestApp(env());
  const url = new URL(testDatabaseUrl());
  url.port = String(proxy.port);
  viaProxy = await createTestApp(env(), { databaseUrl: url.toString() });
});
afterAll(async () => {
  await viaProxy?.close();
  await direct?.close();
  await stripe.close();
  await proxy.close();
});

const countWhere = async (db: Knex, ids: string[], state: OutboxState) =>
  Number((await db('usage_outbox').whereIn('id', ids).where({ state }).count<{ n: string }[]>('* as n'))[0]!.n);

/** How many times each identifier was sent on the stream. */
const sends = () => {
  const n = new Map<string, number>();
  for (const call of stripe.streamCalls())
    for (const e of (call.body as { events: { identifier: string }[] }).events) n.set(e.identifier, (n.get(e.identifier) ?? 0) + 1);
  return n;
};

test('when PostgreSQL goes away while calls are at Stripe, then within 15 seconds of its return every event is marked sent, each sent once', async () => {
  // Other files leave events behind: only this test's count.
  await clearPendingForwarding(direct.db);
  const customers = [await createStripeCustomer(direct), await createStripeCustomer(direct)];
  const ids = [...(await reportBatch(direct, customers[0]!, 400)), ...(await reportBatch(direct, customers[1]!, 400))];

  // Stripe takes each call at once and answers 1.5-2 s later: the outage starts in between.
  stripe.setLatency(1500, 2000);
  viaProxy.c.forwarder.start();
  for (const end = Date.now() + 10_000; stripe.streamCalls().length < 4 && Date.now() < end;) await sleep(10);
  await proxy.cut();
  expect(stripe.streamCalls()).toHaveLength(4);

  await sleep(3000);
  // The fault happened: Stripe holds events that PostgreSQL still has as pending, and their marks were refused.
  const atStripe = ids.filter((id) => stripe.held.has(id));
  expect(atStripe).toHaveLength(400);
  expect(await countWhere(direct.db, atStripe, 'pending')).toBe(400);
  expect(viaProxy.logs.some((l) => l.includes('usage outcome not recorded; retrying until PostgreSQL answers'))).toBe(true);

  stripe.setLatency(0, 100);
  await proxy.restore();
  const restored = Date.now();
  while ((await countWhere(direct.db, ids, 'sent')) < ids.length && Date.now() - restored < 15_000) await sleep(100);
  const seconds = (Date.now() - restored) / 1000;
  expect(await countWhere(direct.db, ids, 'sent')).toBe(ids.length);
  expect(seconds).toBeLessThan(15);

  // Each identifier reached Stripe once: the outcomes were written, nothing was sent again.
  const sent = sends();
  expect(ids.every((id) => stripe.held.has(id) && sent.get(id) === 1)).toBe(true);
  expect(stripe.duplicates()).toBe(0);
  await viaProxy.c.forwarder.stop();
  expect(viaProxy.c.forwarder.held()).toBe(0);
}, 60_000);
