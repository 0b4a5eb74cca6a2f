/**
 * npm run bench:webhooks: how fast one instance delivers webhooks, and whether a dead endpoint holds
 * back the healthy ones.
 *
 * Three endpoints want every event: two healthy receivers answering each request in 0-300 ms
 * (uniform), and a dead one (BENCH_DEAD: `hang`, the default, accepts the connection and never
 * answers, so each attempt holds its slot for WEBHOOK_TIMEOUT; `refused`, nothing listens). The
 * receivers run in this process, one event loop with the service.
 *
 * 1. Throughput: BENCH_EVENTS (10,000) events are written (events.emit, 1,000 per transaction) with
 *    the worker stopped, then it starts: the time until every healthy delivery is made gives
 *    deliveries a second (the dead endpoint's failed attempts counted apart).
 * 2. Delay: BENCH_EVENTS more events are written at BENCH_RATE events a second (200, in tens) while
 *    the worker runs; each healthy delivery's delay is its arrival at the receiver minus its event's
 *    created_at: p50, p99, max.
 *
 * 3. Wake-up when idle: BENCH_IDLE (40) single events 300 ms apart: the delay shows how soon an idle
 *    worker hears of new work (LISTEN/NOTIFY; BENCH_LISTEN=0 measures polling alone, every second).
 *
 * BENCH_LISTEN=0 measures polling alone (no LISTEN/NOTIFY wake-up).
 *
 * Every 100th request is verified with the standardwebhooks package (a failure stops the bench).
 *
 * Settings: BENCH_DATABASE_URL (else TEST_DATABASE_URL, else an embedded PostgreSQL; a temporary
 * database is made there and dropped), BENCH_EVENTS, BENCH_RATE, BENCH_DEAD, BENCH_LATENCY_MS (300),
 * and the service's WEBHOOK_CONCURRENCY and WEBHOOK_ENDPOINT_CONCURRENCY (their defaults, 200 and 50, unless
 * set: at 150 ms a request on average, 50 in flight carry ~330 deliveries a second to one endpoint) and
 * WEBHOOK_TIMEOUT (10s).
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import os from 'node:os';
import { Webhook } from 'standardwebhooks';
import { createKnex } from '../src/db/knex';
import { migrateLatest } from '../src/db/migration-source';
import { benchDatabase } from './bench-database';
import { insertEndpoint } from '../tests/helpers/delivery-fixtures';
import { createTestApp } from '../tests/helpers/test-app';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 10_000);
const RATE = Number(process.env.BENCH_RATE ?? 200);
const DEAD = process.env.BENCH_DEAD ?? 'hang';
const LATENCY = Number(process.env.BENCH_LATENCY_MS ?? 300);
const IDLE = Number(process.env.BENCH_IDLE ?? 40);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * p) - 1)]!;

interface BenchReceiver {
  url: string;
  /** Arrival time of each request, by event id (the first arrival). */
  arrivals: Map<string, number>;
  requests: number;
  secret: string;
  close(): Promise<void>;
}

async function receiver(mode: 'healthy' | 'hang'): Promise<BenchReceiver> {
  const arrivals = new Map<string, number>();
  const sockets = new Set<Socket>();
  const r: BenchReceiver = { url: '', arrivals, requests: 0, secret: '', close: () => Promise.resolve() };
  const server = http.createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (mode === 'hang') return;
      const at = Date.now();
      const id = String(req.headers['webhook-id']);
      r.requests++;
      if (!arrivals.has(id)) arrivals.set(id, at);
      if (r.requests % 100 === 0) new Webhook(r.secret).verify(Buffer.concat(chunks).toString('utf8'), req.headers as Record<string, string>);
      setTimeout(() => res.writeHead(200).end('ok'), Math.random() * LATENCY);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
  r.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return r;
}

async function main(): Promise<void> {
  const { url, drop } = await benchDatabase('webhooks');
  const migrator = createKnex({ url, poolMax: 2 });
  await migrateLatest(migrator);
  await migrator.destroy();
  process.env.TEST_DATABASE_URL = url;
  const t = await createTestApp(
    {
      LOG_LEVEL: 'warn',
      WEBHOOK_SECRETS_KEY: randomBytes(32).toString('base64'),
      WEBHOOK_ALLOW_PRIVATE: 'true',
      WEBHOOK_ALLOW_HTTP: 'true',
      ...(process.env.WEBHOOK_CONCURRENCY ? { WEBHOOK_CONCURRENCY: process.env.WEBHOOK_CONCURRENCY } : {}),
      ...(process.env.WEBHOOK_ENDPOINT_CONCURRENCY ? { WEBHOOK_ENDPOINT_CONCURRENCY: process.env.WEBHOOK_ENDPOINT_CONCURRENCY } : {}),
      WEBHOOK_TIMEOUT: process.env.WEBHOOK_TIMEOUT ?? '10s',
    },
    { databaseUrl: url },
  );
  const healthy = [await receiver('healthy'), await receiver('healthy')];
  const dead = DEAD === 'hang' ? await receiver('hang') : null;
  try {
    for (const h of healthy) h.secret = (await insertEndpoint(t, { url: h.url })).secret;
    await insertEndpoint(t, { url: dead?.url ?? 'http://127.0.0.1:9/hooks' });
    const count = async (state: 'pending' | 'delivered' | 'failed') =>
      Number((await t.db('webhook_deliveries').where({ state }).count<{ n: string }[]>('* as n'))[0]!.n);
    const emitBatch = (n: number) =>
      t.db.transaction((trx) =>
        t.c.events.emit(
          trx,
          Array.from({ length: n }, (_, i) => ({ type: 'customer.updated' as const, data: { seq: i, note: 'bench' } })),
        ),
      );
    const attempts = async () => (await t.c.metrics.webhookDeliveries.get()).values.reduce((n, v) => n + v.value, 0);

    // 1. Throughput from a backlog.
    for (let n = 0; n < EVENTS; n += 1000) await emitBatch(Math.min(1000, EVENTS - n));
    const start = performance.now();
    // BENCH_LISTEN=0: no LISTEN, the worker finds new work by polling alone (every second).
    t.c.deliveryWorker.start(process.env.BENCH_LISTEN === '0' ? undefined : url);
    const healthyTotal = EVENTS * healthy.length;
    while ((await count('delivered')) < healthyTotal) await sleep(50);
    const seconds = (performance.now() - start) / 1000;
    const attemptsMade = await attempts();
    const throughput = {
      events: EVENTS,
      healthy_deliveries: healthyTotal,
      seconds: Math.round(seconds * 100) / 100,
      deliveries_per_second: Math.round(healthyTotal / seconds),
      attempts_per_second_all_endpoints: Math.round(attemptsMade / seconds),
    };
    console.log(
      `throughput: ${healthyTotal} healthy deliveries in ${throughput.seconds} s = ${throughput.deliveries_per_second}/s (${throughput.attempts_per_second_all_endpoints} attempts/s with the dead endpoint's)`,
    );

    // 2. Delay at a steady rate, the dead endpoint still there.
    const ids: string[] = [];
    const perTick = 10;
    const tickMs = (1000 * perTick) / RATE;
    const began = performance.now();
    for (let n = 0; n < EVENTS; n += perTick) {
      ids.push(...(await emitBatch(Math.min(perTick, EVENTS - n))));
      const due = began + ((n + perTick) / perTick) * tickMs;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
    }
    const emitSeconds = (performance.now() - began) / 1000;
    const allArrived = () => healthy.every((h) => ids.every((id) => h.arrivals.has(id)));
    for (const end = Date.now() + 120_000; !allArrived() && Date.now() < end;) await sleep(100);
    if (!allArrived()) throw new Error('not every event reached the healthy receivers within 120 s');
    const created = new Map<string, number>();
    for (let i = 0; i < ids.length; i += 1000) {
      for (const e of await t
        .db('events')
        .whereIn('id', ids.slice(i, i + 1000))
        .select('id', 'created_at'))
        created.set(e.id, e.created_at.getTime());
    }
    const delays = healthy.flatMap((h) => ids.map((id) => h.arrivals.get(id)! - created.get(id)!)).sort((a, b) => a - b);
    const delay = {
      events: EVENTS,
      rate_per_second: Math.round(EVENTS / emitSeconds),
      p50_ms: pct(delays, 0.5),
      p99_ms: pct(delays, 0.99),
      max_ms: delays[delays.length - 1],
    };
    console.log(
      `delay: ${EVENTS} events at ${delay.rate_per_second}/s; healthy endpoints' delay from event to delivery p50 ${delay.p50_ms} ms, p99 ${delay.p99_ms} ms, max ${delay.max_ms} ms`,
    );
    // 3. Wake-up when idle: single events, 300 ms apart, nothing else to do (NOTIFY, or the poll).
    const single: string[] = [];
    for (let n = 0; n < IDLE; n++) {
      single.push(...(await emitBatch(1)));
      await sleep(300);
    }
    for (const end = Date.now() + 30_000; !healthy.every((h) => single.every((id) => h.arrivals.has(id))) && Date.now() < end;) await sleep(50);
    const singleCreated = new Map((await t.db('events').whereIn('id', single).select('id', 'created_at')).map((e) => [e.id, e.created_at.getTime()]));
    const wake = healthy.flatMap((h) => single.map((id) => (h.arrivals.get(id) ?? Infinity) - singleCreated.get(id)!)).sort((a, b) => a - b);
    const idle = { events: IDLE, listen: process.env.BENCH_LISTEN !== '0', p50_ms: pct(wake, 0.5), p99_ms: pct(wake, 0.99) };
    console.log(`idle wake-up (${idle.listen ? 'LISTEN/NOTIFY' : 'polling alone'}): ${IDLE} single events; delay p50 ${idle.p50_ms} ms, p99 ${idle.p99_ms} ms`);
    await t.c.deliveryWorker.stop();
    const summary = {
      idle,
      dead_endpoint: DEAD,
      latency_ms: `0-${LATENCY}`,
      concurrency: t.c.config.webhooks.concurrency,
      endpoint_concurrency: t.c.config.webhooks.endpointConcurrency,
      timeout_ms: t.c.config.webhooks.timeoutMs,
      cpus: os.cpus().length,
      throughput,
      delay,
      failed_attempts_on_dead_endpoint: await t.db('webhook_attempts').where({ outcome: 'failed' }).count<{ n: string }[]>('* as n'),
    };
    console.log(JSON.stringify(summary, null, 2));
  } finally {
    for (const h of healthy) await h.close();
    await dead?.close();
    await t.close();
    await drop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
