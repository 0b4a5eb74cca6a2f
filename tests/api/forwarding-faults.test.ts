/**
 * Exactly once at Stripe, whatever goes wrong on the way: 30% of Stripe calls fail (500, 429),
 * 10% of answers are lost after Stripe did the work, an instance dies mid-flight (its leases run
 * out and another instance sends those events again), and PostgreSQL goes away and comes back
 * (through a TCP proxy, as in database-outage.test.ts). What Stripe holds, by identifier, must be
 * exactly the events the service acknowledged: none missing, none extra.
 *
 * The random faults make the mix; the ones asserted are planned, so each surely happens: the dying
 * instance's first two calls are done by Stripe and never answered (its events must be sent again,
 * and Stripe must drop the repeat), and the next two get a 500 and a 429.
 */
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { CreatedCustomer, createCustomer } from '../helpers/factories';
import { FakeStripe, startFakeStripe } from '../helpers/fake-stripe';
import { startTcpProxy, TcpProxy } from '../helpers/tcp-proxy';
import { createTestApp, TestApp, testDatabaseUrl } from '../helpers/test-app';
import { clearPendingForwarding } from '../helpers/forwarding-state';

let proxy: TcpProxy;
let stripe: FakeStripe;
let viaProxy: string;
const apps: TestApp[] = [];

beforeAll(async () => {
  const real = new URL(testDatabaseUrl());
  proxy = await startTcpProxy(real.hostname, Number(real.port || 5432));
  const url = new URL(testDatabaseUrl());
  url.port = String(proxy.port);
  viaProxy = url.toString();
  stripe = await startFakeStripe();
});
afterAll(async () => {
  for (const a of apps) await a.close().catch(() => undefined);
  await stripe.close();
  await proxy.close();
});

const env = (timeoutMs = 300) => ({
  STRIPE_SECRET_KEY: 'sk_test_faults123',
  STRIPE_API_BASE: stripe.url,
  STRIPE_TIMEOUT_MS: String(timeoutMs),
  FORWARDER_BACKOFF_BASE_MS: '20',
  FORWARDER_BACKOFF_MAX_MS: '300',
  FORWARDER_MAX_ATTEMPTS: '100',
  FORWARDER_LEASE_SECONDS: '5',
  FORWARDER_INTERVAL_MS: '50',
  FORWARDER_BATCH_SIZE: '200',
  FORWARDER_CONCURRENCY: '4',
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('when calls fail, answers are lost, an instance dies and PostgreSQL restarts, then Stripe holds each acknowledged event exactly once', async () => {
  // Other files leave events behind: only this test's customers count here.
  // a's calls outlast its death: it cannot have written anything about them.
  const a = await createTestApp(env(5000), { databaseUrl: viaProxy });
  apps.push(a);
  await clearPendingForwarding(a.db);
  const customers = [await createCustomer(a), await createCustomer(a)];
  const acknowledged = new Map<string, string>(); // id -> quantity
  const ingest = async (t: TestApp, c: CreatedCustomer, n: number) => {
    const events = Array.from({ length: n }, (_, i) => ({
      metric: 'api_calls',
      quantity: `${(i % 9) + 1}`,
      idempotency_key: `x-${randomBytes(8).toString('hex')}`,
    }));
    const res = await request(t.app).post('/api/usage').set('X-API-Key', c.apiKey).send({ events });
    if (res.status === 201) res.body.events.forEach((e: { id: string }, i: number) => acknowledged.set(e.id, events[i]!.quantity));
    return res.status;
  };
  for (const c of customers) expect(await ingest(a, c, 400)).toBe(201);

  stripe.setLatency(0, 100);
  const from = stripe.streamCalls().length;
  stripe.failNext(/meter_event_stream/, 2, 'drop');
  stripe.failNext(/meter_event_stream/, 1, { status: 500 });
  stripe.failNext(/meter_event_stream/, 1, { status: 429, type: 'rate_limit', message: 'Too many requests' });
  stripe.failRandomly(/meter_event_/, 0.3, [{ status: 500 }, { status: 429, type: 'rate_limit', message: 'Too many requests' }]);
  stripe.failRandomly(/meter_event_/, 0.143, ['drop']); // 10% of all calls: 0.7 * 0.143

  // Instance a dies mid-flight: its pool goes away while its first two calls are at Stripe (done
  // there, never answered), so what they carried stays leased (not marked) until the lease ends.
  a.c.forwarder.start();
  // Generous for a loaded machine: the loop ends as soon as the two calls are there.
  for (const end = Date.now() + 30_000; stripe.streamCalls().length < from + 2 && Date.now() < end;) await sleep(5);
  const dropped = stripe
    .streamCalls()
    .slice(from, from + 2)
    .flatMap((c) => (c.body as { events: { identifier: string }[] }).events.map((e) => e.identifier));
  expect(dropped.length).toBeGreaterThan(0);
  void a.c.forwarder.stop();
  await a.db.destroy();

  const b = await createTestApp(env(), { databaseUrl: viaProxy });
  apps.push(b);
  b.c.forwarder.start();
  expect(await ingest(b, customers[0]!, 300)).toBe(201);
  await sleep(300);

  // PostgreSQL goes away for a while: usage is refused (not acknowledged), forwarding pauses.
  await proxy.cut();
  expect(await ingest(b, customers[1]!, 50)).toBe(503);
  await sleep(1500);
  await proxy.restore();
  for (let i = 0; i < 20 && (await ingest(b, customers[1]!, 300)) !== 201; i++) await sleep(200);

  // Until the outbox is empty (leases of the dead instance run out after 5 s).
  const ids = [...acknowledged.keys()];
  const deadline = Date.now() + 60_000;
  for (;;) {
    const pending = await b
      .db('usage_outbox')
      .whereIn(
        'customer_id',
        customers.map((c) => c.id),
      )
      .whereNot({ state: 'sent' })
      .count<{ n: string }[]>('* as n');
    if (Number(pending[0]?.n) === 0 || Date.now() > deadline) break;
    await sleep(200);
  }
  await b.c.forwarder.stop();

  const rows = await b
    .db('usage_outbox')
    .whereIn(
      'customer_id',
      customers.map((c) => c.id),
    )
    .select('id', 'state');
  expect(rows.filter((r) => r.state !== 'sent')).toEqual([]);
  expect(new Set(rows.map((r) => r.id))).toEqual(new Set(ids));

  const stripeIds = new Set([...stripe.held.keys()]);
  expect(stripeIds).toEqual(new Set(ids));
  for (const [id, quantity] of acknowledged) expect([id, stripe.held.get(id)!.payload.value]).toEqual([id, quantity]);
  // The planned faults happened. The lost answers: Stripe held those events, they were sent again
  // (nothing else marks them sent) and Stripe dropped the repeats.
  const sends = new Map<string, number>();
  for (const call of stripe.streamCalls().slice(from))
    for (const e of (call.body as { events: { identifier: string }[] }).events) sends.set(e.identifier, (sends.get(e.identifier) ?? 0) + 1);
  expect(dropped.filter((id) => (sends.get(id) ?? 0) < 2)).toEqual([]);
  expect(stripe.duplicates()).toBeGreaterThanOrEqual(dropped.length);
  // The refusals: a call answered 500 and one answered 429 were retried.
  const retried = [...a.logs, ...b.logs].filter((l) => l.includes('usage submission not accepted by Stripe; will retry'));
  expect(retried.some((l) => l.includes('"status":500'))).toBe(true);
  expect(retried.some((l) => l.includes('"status":429'))).toBe(true);
}, 120_000);
