/**
 * npm run bench:forwarding: how fast one instance forwards usage to a slow Stripe.
 *
 * Each round ingests BENCH_EVENTS usage events (10,000) through POST /api/usage in batches of 1000,
 * then starts the forwarder against the fake Stripe (tests/helpers/fake-stripe.ts) answering every
 * call in 0-300 ms, and times until the outbox is empty. It counts the Stripe calls (sessions and
 * stream calls, or v1 meter events) and checks that Stripe holds every event exactly once.
 *
 * Settings: BENCH_DATABASE_URL (else TEST_DATABASE_URL, else an embedded PostgreSQL; a temporary
 * database is made there and dropped), BENCH_ROUNDS (3), BENCH_EVENTS (10000), BENCH_MODE
 * (stream | v1), BENCH_LATENCY_MS (300: the slowest answer), FORWARDER_CONCURRENCY and
 * FORWARDER_BATCH_SIZE (the service's defaults).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { createKnex } from '../src/db/knex';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../src/db/embedded-postgres';
import { migrateLatest } from '../src/db/migration-source';
import { createCustomer } from '../tests/helpers/factories';
import { startFakeStripe } from '../tests/helpers/fake-stripe';
import { createTestApp } from '../tests/helpers/test-app';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const EVENTS = Number(process.env.BENCH_EVENTS ?? 10_000);
const MODE = process.env.BENCH_MODE ?? 'stream';
const LATENCY = Number(process.env.BENCH_LATENCY_MS ?? 300);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function database(): Promise<{ url: string; drop: () => Promise<void> }> {
  let base = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL;
  let pg: EmbeddedPostgresHandle | null = null;
  let dir = '';
  if (!base) {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-bench-fwd-'));
    pg = await startEmbeddedPostgres({ dataDir: dir, port: 0, persistent: false, database: 'billing_bench' });
    base = pg.url;
  }
  const name = `bench_forwarding_${process.pid}_${Date.now()}`;
  const admin = createKnex({ url: base, poolMax: 1 });
  await admin.raw('create database ??', [name]);
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      await admin.raw('drop database ?? with (force)', [name]);
      await admin.destroy();
      if (pg) {
        await pg.stop();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

async function main(): Promise<void> {
  const { url, drop } = await database();
  const db = createKnex({ url, poolMax: 2 });
  await migrateLatest(db);
  await db.destroy();
  const stripe = await startFakeStripe();
  process.env.TEST_DATABASE_URL = url;
  const t = await createTestApp(
    {
      STRIPE_SECRET_KEY: 'sk_test_bench',
      STRIPE_API_BASE: stripe.url,
      FORWARDER_MODE: MODE,
      LOG_LEVEL: 'warn',
      USAGE_MAX_BATCH: '1000',
      ...(process.env.FORWARDER_CONCURRENCY ? { FORWARDER_CONCURRENCY: process.env.FORWARDER_CONCURRENCY } : {}),
      ...(process.env.FORWARDER_BATCH_SIZE ? { FORWARDER_BATCH_SIZE: process.env.FORWARDER_BATCH_SIZE } : {}),
    },
    { databaseUrl: url },
  );
  const rounds: { eventsPerSecond: number; seconds: number; calls: number; eventsPerCall: number; ingestPerSecond: number }[] = [];
  try {
    const customers = await Promise.all(Array.from({ length: 10 }, () => createCustomer(t)));
    for (let round = 1; round <= ROUNDS; round++) {
      // Ingest with Stripe answering at once; then make it slow for forwarding.
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
      const ingestSeconds = (performance.now() - ingestStart) / 1000;

      stripe.setLatency(0, LATENCY);
      const callsBefore = stripe.requests.length;
      const start = performance.now();
      t.c.forwarder.start();
      for (;;) {
        const pending = await t.db('usage_events').where({ state: 'pending' }).count<{ n: string }[]>('* as n');
        if (Number(pending[0]?.n) === 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const seconds = (performance.now() - start) / 1000;
      await t.c.forwarder.stop();
      const calls = stripe.requests.length - callsBefore;
      const missing = ids.filter((id) => !stripe.held.has(id));
      if (missing.length > 0) throw new Error(`${missing.length} acknowledged events are not at Stripe`);
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
