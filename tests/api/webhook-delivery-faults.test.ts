/**
 * Webhook deliveries through faults: receivers that fail, hang, reset, trickle or answer slowly; a
 * worker stopped mid-delivery, and one killed; PostgreSQL going away while attempts are in flight;
 * two instances delivering at once; a dead endpoint beside a healthy one. At the end of each, every
 * event reached every endpoint that wants it at least once, verified by standardwebhooks, and every
 * delivery of one event carried the same webhook-id (the event's id).
 */
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy';
import {
  deliveryStates,
  disableOtherEndpoints,
  endpointWithReceiver,
  newWorker,
  sleep,
  waitFor,
  webhookEnv,
  type Receiver,
} from '../helpers/delivery-fixtures';
import { emitEvents } from '../helpers/factories';
import { createTestApp, testDatabaseUrl, type TestApp } from '../helpers/test-app';
import type { DeliveryWorker } from '../../src/modules/webhooks/delivery-worker';

let t: TestApp;
const apps: TestApp[] = [];
const receivers: Receiver[] = [];
const workers: DeliveryWorker[] = [];
const env = webhookEnv({ WEBHOOK_TIMEOUT: '1s', WEBHOOK_RETRY_SCHEDULE: '1s,1s,1s,1s,1s,1s' });

beforeAll(async () => {
  t = await createTestApp(env);
  await disableOtherEndpoints(t);
});
afterEach(async () => {
  for (const w of workers.splice(0)) await w.stop();
  await disableOtherEndpoints(t);
});
afterAll(async () => {
  for (const r of receivers) await r.close();
  for (const a of apps) await a.close().catch(() => undefined);
  await t.close();
});

const receiving = async (events: string[] = ['*']) => {
  const ep = await endpointWithReceiver(t, events);
  receivers.push(ep.receiver);
  return ep;
};
const worker = (app: TestApp = t, opts: Parameters<typeof newWorker>[1] = {}) => {
  const w = newWorker(app, opts);
  workers.push(w);
  return w;
};

/** Every event reached the receiver verified, and every request's webhook-id is the id in its body. */
function expectAllReceived(r: Receiver, ids: string[]): void {
  const counts = r.counts();
  expect(ids.filter((id) => !counts.has(id))).toEqual([]);
  for (const x of r.received) {
    expect(x.verifyError).toBeNull();
    expect((JSON.parse(x.body) as { id: string }).id).toBe(x.id);
  }
}

const allDelivered = (endpointId: string, ids: string[]) => async () => (await deliveryStates(t, endpointId, ids)).delivered === ids.length;

test('when receivers answer 500 for a while, hang past the timeout, reset the connection, trickle, or answer slowly, then every event is delivered, with the same webhook-id on every retry', async () => {
  const failing = await receiving();
  failing.receiver.behave(({ count }) => (count <= 2 ? { status: 500, body: 'later' } : { status: 200 }));
  const hanging = await receiving();
  hanging.receiver.behave(({ count }) => (count === 1 ? 'hang' : { status: 200 }));
  const resetting = await receiving();
  resetting.receiver.behave(({ count }) => (count === 1 ? 'reset' : { status: 202 }));
  const trickling = await receiving();
  trickling.receiver.behave(({ count }) => (count === 1 ? { trickleMs: 100 } : { status: 200 }));
  const slow = await receiving();
  slow.receiver.behave(() => ({ status: 200, delayMs: 300 }));
  const ids = await emitEvents(t, 10);
  worker().start();
  for (const ep of [failing, hanging, resetting, trickling, slow]) await waitFor(allDelivered(ep.id, ids), 20_000, 'every delivery');
  for (const ep of [failing, hanging, resetting, trickling, slow]) expectAllReceived(ep.receiver, ids);

  // The faults happened, and each retry carried the event's id again.
  expect(failing.receiver.received).toHaveLength(30);
  expect(hanging.receiver.received).toHaveLength(20);
  for (const ep of [failing, hanging, resetting, trickling]) {
    for (const id of ids) expect(ep.receiver.received.filter((x) => x.id === id).length).toBeGreaterThanOrEqual(2);
  }
  const errors = async (endpointId: string) =>
    (await t.db('webhook_attempts').where({ endpoint_id: endpointId, outcome: 'failed' })).map((a) => [a.error, a.duration_ms] as const);
  expect((await errors(failing.id)).map(([e]) => e)).toEqual(Array(20).fill('HTTP 500'));
  for (const [e, ms] of await errors(hanging.id)) {
    expect(e).toBe('timed out after 1000 ms');
    expect(ms).toBeLessThan(1300);
  }
  for (const [e] of await errors(resetting.id)) expect(e).toMatch(/connection reset|socket hang up/);
  // A trickled answer holds the slot no longer than the timeout.
  for (const [e, ms] of await errors(trickling.id)) {
    expect(e).toBe('timed out after 1000 ms');
    expect(ms).toBeLessThan(1300);
  }
  expect(await t.db('webhook_attempts').where({ endpoint_id: slow.id, outcome: 'failed' })).toHaveLength(0);
}, 40_000);

test('when the worker is stopped mid-delivery and another started, then it finishes its attempts first and the other delivers the rest, each once', async () => {
  const ep = await receiving();
  ep.receiver.behave(() => ({ status: 200, delayMs: 500 }));
  const ids = await emitEvents(t, 60);
  const a = worker(t, { concurrency: 10 });
  a.start();
  await waitFor(() => ep.receiver.received.length >= 5);
  expect(a.inFlight()).toBeGreaterThan(0);
  const stopping = Date.now();
  await a.stop();
  // Bounded by the timeout: it finished what it had started and took nothing more.
  expect(Date.now() - stopping).toBeLessThan(1500);
  expect(a.held()).toBe(0);
  const byA = ep.receiver.received.length;
  expect(byA).toBeLessThan(60);
  expect((await deliveryStates(t, ep.id, ids)).delivered).toBe(byA);
  worker(t, { concurrency: 10 }).start();
  await waitFor(allDelivered(ep.id, ids), 20_000);
  expectAllReceived(ep.receiver, ids);
  expect([...ep.receiver.counts().values()].every((n) => n === 1)).toBe(true);
}, 30_000);

test('when an instance dies mid-delivery (its database gone, its outcomes never written), then its leases end and another delivers everything again under the same webhook-id', async () => {
  const ep = await receiving();
  ep.receiver.behave(() => ({ status: 200, delayMs: 800 }));
  const ids = await emitEvents(t, 20);
  const dying = await createTestApp(env);
  apps.push(dying);
  const a = worker(dying, { leaseSeconds: 2, concurrency: 20 });
  a.start();
  await waitFor(() => ep.receiver.received.length >= 10);
  // The instance dies: its pool is gone, nothing more of it reaches PostgreSQL.
  await dying.db.destroy();
  const b = worker(t, { leaseSeconds: 2 });
  b.start();
  await waitFor(allDelivered(ep.id, ids), 20_000);
  expectAllReceived(ep.receiver, ids);
  // The fault happened: what the dead instance sent was sent again, by id.
  const repeated = [...ep.receiver.counts().entries()].filter(([, n]) => n > 1).map(([id]) => id);
  expect(repeated.length).toBeGreaterThan(0);
  for (const id of repeated) expect(new Set(ep.receiver.received.filter((x) => x.id === id).map((x) => JSON.parse(x.body).id))).toEqual(new Set([id]));
  expect(dying.logs.some((l) => l.includes('webhook delivery outcome not recorded'))).toBe(true);
}, 30_000);

describe('PostgreSQL outage', () => {
  let proxy: TcpProxy;
  let viaProxy: TestApp;
  beforeAll(async () => {
    const real = new URL(testDatabaseUrl());
    proxy = await startTcpProxy(real.hostname, Number(real.port || 5432));
    real.port = String(proxy.port);
    viaProxy = await createTestApp(env, { databaseUrl: real.toString() });
    apps.push(viaProxy);
  });
  afterAll(async () => {
    await proxy.close();
  });

  test('when PostgreSQL goes away while attempts are at the receiver, then the outcomes are kept and written when it returns: every event delivered once', async () => {
    const ep = await receiving();
    ep.receiver.behave(() => ({ status: 200, delayMs: 700 }));
    const ids = await emitEvents(t, 40);
    const w = worker(viaProxy, { leaseSeconds: 15, concurrency: 50, endpointConcurrency: 50 });
    w.start();
    await waitFor(() => ep.receiver.received.length === 40, 10_000);
    // Cut while the receiver holds every request (it answers 700 ms later).
    await proxy.cut();
    await sleep(2500);
    // The fault happened: the receiver answered, PostgreSQL still has them pending, the writes were refused.
    expect((await deliveryStates(t, ep.id, ids)).pending).toBe(40);
    expect(viaProxy.logs.some((l) => l.includes('webhook delivery outcome not recorded; retrying until PostgreSQL answers'))).toBe(true);
    await proxy.restore();
    const back = Date.now();
    await waitFor(allDelivered(ep.id, ids), 15_000);
    expect(Date.now() - back).toBeLessThan(5000);
    expectAllReceived(ep.receiver, ids);
    expect([...ep.receiver.counts().values()].every((n) => n === 1)).toBe(true);
    expect(await t.db('webhook_attempts').where({ endpoint_id: ep.id })).toHaveLength(40);
    // And it goes on claiming afterwards.
    const more = await emitEvents(t, 5);
    await waitFor(allDelivered(ep.id, more), 10_000);
  }, 40_000);
});

test('when two instances deliver at once, then every event reaches every endpoint that wants it exactly once, and both did part of it', async () => {
  const a = await receiving(['customer.*']);
  const b = await receiving(['*']);
  const other = await receiving(['license.*']);
  a.receiver.behave(() => ({ status: 200, delayMs: Math.floor(Math.random() * 30) }));
  b.receiver.behave(() => ({ status: 200, delayMs: Math.floor(Math.random() * 30) }));
  const second = await createTestApp(env);
  apps.push(second);
  const ids = await emitEvents(t, 300);
  worker(t, { concurrency: 20 }).start();
  worker(second, { concurrency: 20 }).start();
  await waitFor(async () => (await allDelivered(a.id, ids)()) && (await allDelivered(b.id, ids)()), 30_000);
  for (const ep of [a, b]) {
    expectAllReceived(ep.receiver, ids);
    expect([...ep.receiver.counts().values()].every((n) => n === 1)).toBe(true);
    expect(ep.receiver.received).toHaveLength(300);
  }
  expect(other.receiver.received).toHaveLength(0);
  const attempts = async (app: TestApp) => (await app.c.metrics.webhookDeliveries.get()).values.reduce((n, v) => n + v.value, 0);
  expect(await attempts(t)).toBeGreaterThan(50);
  expect(await attempts(second)).toBeGreaterThan(50);
}, 40_000);

describe('a dead endpoint beside a healthy one', () => {
  /** Emits 100 events in tens, every 50 ms, and answers the healthy endpoint's delays (receipt - event written), sorted. */
  async function healthyDelays(withDead: boolean): Promise<number[]> {
    const healthy = await receiving();
    healthy.receiver.behave(() => ({ status: 200, delayMs: 5 }));
    if (withDead) {
      const dead = await receiving();
      dead.receiver.behave(() => 'hang');
    }
    const w = worker(t, { concurrency: 20, endpointConcurrency: 10 });
    w.start();
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      ids.push(...(await emitEvents(t, 10)));
      await sleep(50);
    }
    await waitFor(allDelivered(healthy.id, ids), 20_000);
    const created = new Map((await t.db('events').whereIn('id', ids).select('id', 'created_at')).map((e) => [e.id, e.created_at.getTime()]));
    const delays = healthy.receiver.received.map((r) => r.at - created.get(r.id)!).sort((x, y) => x - y);
    await w.stop();
    await disableOtherEndpoints(t);
    return delays;
  }
  const p99 = (xs: number[]) => xs[Math.ceil(xs.length * 0.99) - 1]!;

  test('when one endpoint hangs every attempt past the timeout, then the healthy one is delivered as fast as without it (p99 under the timeout)', async () => {
    const control = await healthyDelays(false);
    const faulted = await healthyDelays(true);
    // The dead endpoint was attempted and held its slots (its attempts time out after 1 s).
    const deadAttempts = await t.db('webhook_attempts').where({ error: 'timed out after 1000 ms' }).count<{ n: string }[]>('* as n');
    expect(Number(deadAttempts[0]!.n)).toBeGreaterThan(0);
    expect(control).toHaveLength(100);
    expect(faulted).toHaveLength(100);
    expect(p99(faulted)).toBeLessThan(1000);
    expect(p99(faulted)).toBeLessThan(p99(control) + 400);
  }, 60_000);
});
