/**
 * npm run bench:billing: what an instance polling its billing costs the service and Stripe.
 *
 * BENCH_CUSTOMERS (50) customers, each subscribed in a fake Stripe that answers every call after
 * BENCH_STRIPE_LATENCY_MS (200; Stripe's own previews take a few hundred ms) and each with
 * BENCH_INVOICES (24) invoices in our copy. BENCH_CONCURRENCY (20) callers, each with one customer's
 * key, call for BENCH_SECONDS (10) each of:
 *
 * 1. `GET /api/invoices/upcoming` with the cache (UPCOMING_INVOICE_CACHE=60s): requests/s, p50/p99,
 *    and how many previews Stripe was asked for (at most one per customer per window);
 * 2. the same with the cache as short as it goes (1s), which is close to asking Stripe every time;
 * 3. `GET /api/invoices` (a page of 20 from our copy; Stripe is never asked).
 *
 * The fake Stripe runs in this process, one event loop with the service, as do the callers.
 * BENCH_DATABASE_URL (else TEST_DATABASE_URL, else an embedded PostgreSQL): a temporary database
 * is made there and dropped.
 */
import os from 'node:os';
import type { AddressInfo } from 'node:net';
import { createKnex } from '../src/db/knex';
import { migrateLatest } from '../src/db/migration-source';
import { createCustomer, createPlan, insertInvoice, subscribe } from '../tests/helpers/factories';
import { startFakeStripe } from '../tests/helpers/fake-stripe';
import { createTestApp, type TestApp } from '../tests/helpers/test-app';
import { benchDatabase } from './bench-database';

const CUSTOMERS = Number(process.env.BENCH_CUSTOMERS ?? 50);
const INVOICES = Number(process.env.BENCH_INVOICES ?? 24);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 20);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const LATENCY = Number(process.env.BENCH_STRIPE_LATENCY_MS ?? 200);
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * p) - 1)] ?? 0;

async function load(base: string, keys: string[], path: string): Promise<{ rps: number; p50: number; p99: number; errors: number }> {
  const times: number[] = [];
  let errors = 0;
  const end = Date.now() + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, i) => {
      const key = keys[i % keys.length]!;
      for (let n = 0; Date.now() < end; n++) {
        const started = performance.now();
        const res = await fetch(`${base}${path}`, { headers: { 'X-API-Key': keys[(i + n * CONCURRENCY) % keys.length] ?? key } });
        const body = await res.text();
        if (res.status !== 200 && errors === 0) console.log(`  ${body.slice(0, 300)}`);
        if (res.status !== 200) {
          if (errors++ === 0) console.log(`  first error: ${res.status} ${res.headers.get('content-type')}`);
        }
        times.push(performance.now() - started);
      }
    }),
  );
  times.sort((a, b) => a - b);
  return { rps: Math.round(times.length / SECONDS), p50: +pct(times, 0.5).toFixed(1), p99: +pct(times, 0.99).toFixed(1), errors };
}

/** Each key verified once (a fresh server sheds a burst of first verifications: bcrypt is slow on purpose). */
async function warm(base: string, keys: string[]): Promise<void> {
  for (const key of keys) await (await fetch(`${base}/api/me`, { headers: { 'X-API-Key': key } })).arrayBuffer();
}

async function served(env: Record<string, string>, url: string): Promise<{ t: TestApp; base: string; close(): Promise<void> }> {
  const t = await createTestApp({ LOG_LEVEL: 'warn', FORWARDER_ENABLED: 'false', ...env }, { databaseUrl: url });
  const server = t.app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  return { t, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => t.close() };
}

async function main(): Promise<void> {
  const { url, drop } = await benchDatabase('billing');
  const migrator = createKnex({ url, poolMax: 2 });
  await migrateLatest(migrator);
  await migrator.destroy();
  process.env.TEST_DATABASE_URL = url;
  const fake = await startFakeStripe();
  const stripeEnv = { STRIPE_SECRET_KEY: 'sk_test_benchbilling', STRIPE_API_BASE: fake.url };
  console.log(
    `${os.cpus().length} cores, load ${os.loadavg()[0]!.toFixed(1)}; ${CUSTOMERS} customers, ${INVOICES} invoices each, ` +
      `${CONCURRENCY} callers for ${SECONDS} s each; Stripe answers after ${LATENCY} ms`,
  );
  try {
    const setup = await served(stripeEnv, url);
    const price = 'price_benchbase';
    fake.prices.set(price, {
      id: price,
      object: 'price',
      currency: 'usd',
      unit_amount: 4900,
      unit_amount_decimal: '4900',
      recurring: { usage_type: 'licensed' },
    });
    const plan = await createPlan(setup.t, { stripe_price_id: price });
    const keys: string[] = [];
    for (let i = 0; i < CUSTOMERS; i++) {
      const c = await createCustomer(setup.t);
      await subscribe(setup.t, { customer: c, plan });
      for (let j = 0; j < INVOICES; j++)
        await insertInvoice(setup.t, c.id, { status: j % 3 ? 'paid' : 'open', created: new Date(Date.now() - j * 30 * 86_400_000) });
      keys.push(c.apiKey);
    }
    await setup.close();
    fake.setLatency(LATENCY, LATENCY);

    for (const [label, cache] of [
      ['upcoming, cached (60s)', '60s'],
      ['upcoming, cache 1s', '1s'],
    ] as const) {
      const s = await served({ ...stripeEnv, UPCOMING_INVOICE_CACHE: cache }, url);
      await warm(s.base, keys);
      const before = fake.previewCalls().length;
      const r = await load(s.base, keys, '/api/invoices/upcoming');
      const calls = fake.previewCalls().length - before;
      console.log(
        `${label}: ${r.rps} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms, ${r.errors} errors; ${calls} Stripe previews (${(calls / SECONDS).toFixed(1)}/s)`,
      );
      await s.close();
    }
    const s = await served(stripeEnv, url);
    await warm(s.base, keys);
    const before = fake.requests.length;
    const r = await load(s.base, keys, '/api/invoices?limit=20');
    console.log(`invoices, a page of 20: ${r.rps} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms, ${r.errors} errors; ${fake.requests.length - before} Stripe calls`);
    await s.close();
  } finally {
    await fake.close();
    await drop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
