/**
 * npm run bench:forwarding: how fast one instance forwards usage to a slow Stripe, and how soon
 * the outbox empties once an outage with faults is over.
 *
 * Each round ingests BENCH_EVENTS usage events (10,000) through POST /api/usage in batches of 1000,
 * then starts the forwarder against the fake Stripe (tests/helpers/fake-stripe.ts) answering every
 * call in 0-300 ms, and times until the outbox is empty. It counts the Stripe calls (sessions and
 * stream calls, or v1 meter events) and checks that Stripe holds every event exactly once.
 *
 * Then the recovery round: BENCH_EVENTS more events, forwarded by an instance whose database is
 * behind a TCP proxy (tests/helpers/tcp-proxy.ts) while Stripe fails 30% of calls (500, 429) and
 * loses 10% of answers after doing the work; after 1 s PostgreSQL goes away for BENCH_OUTAGE_MS
 * (4000), 1 s after it is back the instance dies (its pool gone, its calls in flight unrecorded) and
 * another starts; 1 s later the faults end. The figure is the seconds from the faults' end to an
 * empty outbox; Stripe must hold every event once. BENCH_RECOVERY=0 skips it.
 *
 * Settings: BENCH_DATABASE_URL (else TEST_DATABASE_URL, else an embedded PostgreSQL; a temporary
 * database is made there and dropped), BENCH_ROUNDS (3), BENCH_EVENTS (10000), BENCH_MODE
 * (stream | v1), BENCH_LATENCY_MS (300: the slowest answer), FORWARDER_CONCURRENCY and
 * FORWARDER_BATCH_SIZE (the service's defaults).
 */
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { createKnex } from '../src/db/knex';
import { migrateLatest } from '../src/db/migration-source';
import { benchDatabase } from './bench-database';
import { createCustomer } from '../tests/helpers/factories';
import { startFakeStripe } from '../tests/helpers/fake-stripe';
import { startTcpProxy } from '../tests/helpers/tcp-proxy';
import { createTestApp, type TestApp } from '../tests/helpers/test-app';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const EVENTS = Number(process.env.BENCH_EVENTS ?? 10_000);
const MODE = process.env.BENCH_MODE ?? 'stream';
const LATENCY = Number(process.env.BENCH_LATENCY_MS ?? 300);
const RECOVERY = process.env.BENCH_RECOVERY !== '0';
const OUTAGE_MS = Number(process.env.BENCH_OUTAGE_MS ?? 4000);
const RECOVERY_TIMEOUT_S = Number(process.env.BENCH_RECOVERY_TIMEOUT_S ?? 900);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const { url, drop } = await benchDatabase('forwarding');
  const db = createKnex({ url, poolMax: 2 });
  await migrateLatest(db);
  await db.destroy();
  const stripe = await startFakeStripe();
  process.env.TEST_DATABASE_URL = url;
  const env = {
    STRIPE_SECRET_KEY: 'sk_test_bench',
    STRIPE_API_BASE: stripe.url,
    FORWARDER_MODE: MODE,
    LOG_LEVEL: 'warn',
    USAGE_MAX_BATCH: '1000',
    ...(process.env.FORWARDER_CONCURRENCY ? { FORWARDER_CONCURRENCY: process.env.FORWARDER_CONCURRENCY } : {}),
    ...(process.env.FORWARDER_BATCH_SIZE ? { FORWARDER_BATCH_SIZE: process.env.FORWARDER_BATCH_SIZE } : {}),
    ...(process.env.FORWARDER_LEASE_SECONDS ? { FORWARDER_LEASE_SECONDS: process.env.FORWARDER_LEASE_SECONDS } : {}),
  };
  const t = await createTestApp(env, { databaseUrl: url });
  const pendingNow = async () => Number((await t.db('usage_outbox').where({ state: 'pending' }).count<{ n: string }[]>('* as n'))[0]?.n);
  const rounds: { eventsPerSecond: number; seconds: number; calls: number; eventsPerCall: number; ingestPerSecond: number }[] = [];
  try {
    const customers = await Promise.all(Array.from({ length: 10 }, () => createCustomer(t)));
    // Ingest with Stripe answering at once (forwarding makes it slow).
    const ingest = async () => {
      stripe.setLatency(0, 0);
      const ids: string[] = [];
      const ingestStart = performance.now();
      for (let sent = 0; sent < EVENTS; sent += 1000) {
        const c = customers[(sent / 1000) % customers.length]!;
        const events = Array.from({ length: Math.min(1000, EVENTS - sent) }, (_, i) => ({
          metric: 'api_calls',
          quantity: String(1 + (i % 7)),
          idempotency_key: `b-${randomBytes(8).toString('hex')}`,
        }));
        const res = await request(t.app).post('/api/usage').set('X-API-Key', c.apiKey).send({ events });
        if (res.status !== 201) throw new Error(`ingest: ${res.status} ${JSON.stringify(res.body)}`);
        ids.push(...(res.body as { events: { id: string }[] }).events.map((e) => e.id));
      }
      return { ids, ingestSeconds: (performance.now() - ingestStart) / 1000 };
    };
    const missingAtStripe = (ids: string[]) => {
      const missing = ids.filter((id) => !stripe.held.has(id));
      if (missing.length > 0) throw new Error(`${missing.length} acknowledged events are not at Stripe`);
    };
    for (let round = 1; round <= ROUNDS; round++) {
      const { ids, ingestSeconds } = await ingest();

      stripe.setLatency(0, LATENCY);
      const callsBefore = stripe.requests.length;
      const start = performance.now();
      t.c.forwarder.start();
      while ((await pendingNow()) > 0) await sleep(50);
      const seconds = (performance.now() - start) / 1000;
      await t.c.forwarder.stop();
      const calls = stripe.requests.length - callsBefore;
      missingAtStripe(ids);
      const r = {
        eventsPerSecond: Math.round(EVENTS / seconds),
        seconds: Math.round(seconds * 100) / 100,
        calls,
        eventsPerCall: Math.round((EVENTS / calls) * 10) / 10,
        ingestPerSecond: Math.round(EVENTS / ingestSeconds),
      };
      rounds.push(r);
      console.log(
        `round ${round}: ${EVENTS} events forwarded in ${r.seconds} s = ${r.eventsPerSecond} events/s; ${calls} Stripe calls (${r.eventsPerCall} events per call); ingested at ${r.ingestPerSecond} events/s`,
      );
    }
    let recovery: Record<string, unknown> | null = null;
    if (RECOVERY) {
      const { ids } = await ingest();
      const proxy = await startTcpProxy(new URL(url).hostname, Number(new URL(url).port || 5432));
      const viaProxy = new URL(url);
      viaProxy.port = String(proxy.port);
      const instances: TestApp[] = [];
      const instance = async () => {
        const app = await createTestApp(env, { databaseUrl: viaProxy.toString() });
        instances.push(app);
        app.c.forwarder.start();
        return app;
      };
      try {
        const duplicatesBefore = stripe.duplicates();
        stripe.setLatency(0, LATENCY);
        stripe.failRandomly(/meter_event_/, 0.3, [{ status: 500 }, { status: 429, type: 'rate_limit', message: 'Too many requests' }]);
        stripe.failRandomly(/meter_event_/, 0.143, ['drop']); // 10% of all calls: 0.7 * 0.143
        const a = await instance();
        await sleep(1000);
        await proxy.cut();
        await sleep(OUTAGE_MS);
        await proxy.restore();
        await sleep(1000);
        // a dies: its pool goes away with calls in flight, nothing more of it is written.
        void a.c.forwarder.stop();
        await a.db.destroy();
        await instance();
        await sleep(1000);
        stripe.clearFailures();
        stripe.setLatency(0, LATENCY);
        const pendingAtEnd = await pendingNow();
        const faultsEnded = performance.now();
        while ((await pendingNow()) > 0 && performance.now() - faultsEnded < RECOVERY_TIMEOUT_S * 1000) await sleep(100);
        const seconds = Math.round((performance.now() - faultsEnded) / 100) / 10;
        const left = await pendingNow();
        if (left > 0) throw new Error(`${left} events still pending ${RECOVERY_TIMEOUT_S} s after the faults ended`);
        missingAtStripe(ids);
        const repeats = stripe.duplicates() - duplicatesBefore;
        recovery = {
          events: EVENTS,
          outage_ms: OUTAGE_MS,
          lease_seconds: t.c.config.forwarder.leaseSeconds,
          pending_when_faults_ended: pendingAtEnd,
          seconds_from_faults_end_to_empty_outbox: seconds,
          duplicates_dropped_by_stripe: repeats,
        };
        console.log(
          `recovery: ${pendingAtEnd} of ${EVENTS} events pending when the faults ended; outbox empty ${seconds} s later; every event at Stripe once (${repeats} repeats dropped by Stripe)`,
        );
      } finally {
        for (const app of instances) await app.close().catch(() => undefined);
        await proxy.close();
      }
    }
    const summary = {
      mode: MODE,
      events: EVENTS,
      latency_ms: `0-${LATENCY}`,
      concurrency: t.c.config.forwarder.concurrency,
      batch_size: t.c.config.forwarder.batchSize,
      median_events_per_second: median(rounds.map((r) => r.eventsPerSecond)),
      median_events_per_call: median(rounds.map((r) => r.eventsPerCall)),
      duplicates_dropped_by_stripe: stripe.duplicates(),
      rounds,
      recovery,
    };
    console.log(JSON.stringify(summary));
  } finally {
    await t.close();
    await stripe.close();
    await drop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
