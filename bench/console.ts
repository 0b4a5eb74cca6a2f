/**
 * npm run bench:console: the admin console's figures on this machine.
 * - Time to interactive of the overview and of a customer's page with BENCH_CONSOLE_EVENTS (2,000,000)
 *   usage events in the database, in headless Chromium (Debian's chromium): from the start of the
 *   navigation until the page shows its data (the usage chart drawn, the counts or the keys listed),
 *   read from the page's own clock. BENCH_CONSOLE_RUNS (7) navigations each, after one to warm up.
 * - The customers list's server time with BENCH_CONSOLE_CUSTOMERS (100,000) customers: the first page,
 *   ten pages deep by cursor, a search that matches many, one that matches none (it reads every row),
 *   and a search by id; BENCH_CONSOLE_READS (30) requests each over loopback, p50 and p95.
 *
 * The usage: 100 customers, each subscribed, loaded through the batch API (bench/usage-load.ts); the
 * other customers are inserted directly. BENCH_DATABASE_URL (else TEST_DATABASE_URL, else an embedded
 * PostgreSQL): a database is made there and dropped at the end.
 */
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { createKnex } from '../src/db/knex';
import { migrateLatest } from '../src/db/migration-source';
import { uuidv7 } from '../src/lib/ids';
import { findChromium, launchChromium } from '../tests/helpers/browser';
import { createCustomer, createPlan, subscribe } from '../tests/helpers/factories';
import { createTestApp, type TestApp } from '../tests/helpers/test-app';
import { benchDatabase } from './bench-database';
import { loadEvents, METRICS, type Load } from './usage-load';

const EVENTS = Number(process.env.BENCH_CONSOLE_EVENTS ?? 2_000_000);
const CUSTOMERS = Number(process.env.BENCH_CONSOLE_CUSTOMERS ?? 100_000);
const RUNS = Number(process.env.BENCH_CONSOLE_RUNS ?? 7);
const READS = Number(process.env.BENCH_CONSOLE_READS ?? 30);
const LOADED = 100;
const log = (line: string) => process.stderr.write(`${line}\n`);
const round1 = (x: number) => Math.round(x * 10) / 10;
const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
const summary = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: round1(quantile(s, 0.5)), p95: round1(quantile(s, 0.95)), max: round1(s[s.length - 1]!) };
};

async function insertCustomers(t: TestApp, n: number): Promise<void> {
  const words = ['Acme', 'Globex', 'Initech', 'Umbrella', 'Hooli', 'Stark', 'Wayne', 'Tyrell'];
  for (let done = 0; done < n;) {
    const size = Math.min(5000, n - done);
    const rows = Array.from({ length: size }, (_v, k) => {
      const i = done + k;
      return { id: uuidv7(), email: `ops${i}@customer${i}.example`, company_name: `${words[i % words.length]} ${i} Ltd`, status: 'active' as const };
    });
    await t.db('customers').insert(rows);
    done += size;
  }
}

async function listTimes(base: string, token: string, path: string): Promise<{ p50: number; p95: number; max: number }> {
  const times: number[] = [];
  for (let i = 0; i < READS; i++) {
    const started = performance.now();
    const res = await fetch(`${base}${path}`, { headers: { Authorization: `Bearer ${token}` } });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`${path}: ${res.status}`);
    times.push(performance.now() - started);
  }
  return summary(times);
}

async function main(): Promise<void> {
  const executablePath = findChromium();
  if (!executablePath) throw new Error('chromium is not installed (apt-get install -y chromium)');
  const bench = await benchDatabase('console');
  let t: TestApp | null = null;
  try {
    const migrator = createKnex({ url: bench.url, poolMax: 1 });
    await migrateLatest(migrator);
    await migrator.destroy();
    t = await createTestApp({ USAGE_METRICS: METRICS.join(','), USAGE_MAX_BATCH: '1000', USAGE_BODY_LIMIT: '1mb' }, { databaseUrl: bench.url });
    const server = t.app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const port = (server.address() as AddressInfo).port;
    const base = `http://127.0.0.1:${port}`;
    log(
      `${os.cpus().length} cores, load ${os.loadavg()[0]!.toFixed(1)}; ${EVENTS.toLocaleString('en')} events over ${LOADED} customers, ${CUSTOMERS.toLocaleString('en')} customers`,
    );

    const plan = await createPlan(t, { entitlements: { features: [], limits: Object.fromEntries(METRICS.map((m) => [m, null])) } });
    const load: Load = { customers: [], counters: [], batch: 1000 };
    for (let i = 0; i < LOADED; i++) {
      const c = await createCustomer(t);
      await subscribe(t, { customer: c, plan });
      load.customers.push(c);
      load.counters.push(0);
    }
    const ingest = await loadEvents(base, load, 0, EVENTS, { concurrency: 8, log });
    log(`loaded in ${Math.round(ingest.ms / 1000)} s`);
    await insertCustomers(t, CUSTOMERS - LOADED);
    await t.db.raw('vacuum analyze');

    const token = t.adminToken;
    const first = await (await fetch(`${base}/api/customers?limit=50`, { headers: { Authorization: `Bearer ${token}` } })).json();
    let cursor = (first as { next_cursor: string }).next_cursor;
    for (let i = 0; i < 9; i++) {
      const next = (await (
        await fetch(`${base}/api/customers?limit=50&cursor=${encodeURIComponent(cursor)}`, { headers: { Authorization: `Bearer ${token}` } })
      ).json()) as {
        next_cursor: string;
      };
      cursor = next.next_cursor;
    }
    const list = {
      first_page: await listTimes(base, token, '/api/customers?limit=50'),
      tenth_page: await listTimes(base, token, `/api/customers?limit=50&cursor=${encodeURIComponent(cursor)}`),
      search_many: await listTimes(base, token, '/api/customers?limit=50&q=acme'),
      search_none: await listTimes(base, token, '/api/customers?limit=50&q=no-such-customer'),
      search_id: await listTimes(base, token, `/api/customers?limit=50&q=${load.customers[0]!.id}`),
    };

    const browser = await launchChromium(executablePath, []);
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await page.goto(`http://localhost:${port}/console/sign-in`);
    await page.getByLabel('Admin token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();

    const tti = async (path: string, ready: string[]) => {
      const times: number[] = [];
      for (let i = 0; i <= RUNS; i++) {
        await page.goto(`http://localhost:${port}${path}`);
        for (const selector of ready) await page.locator(selector).first().waitFor();
        const ms = await page.evaluate<number>('performance.now()');
        if (i > 0) times.push(ms); // the first warms the caches
      }
      return summary(times);
    };
    const customer = load.customers[0]!;
    const pages = {
      overview: await tti('/console', ['[data-testid="usage-chart"] canvas', '[data-testid="customers-active"]', '[data-testid="backlog"]']),
      customer: await tti(`/console/customers/${customer.id}`, ['[data-testid="usage-chart"] canvas', 'tr[data-key-id]', 'td[data-plan]']),
    };
    await browser.close();
    server.close();
    const events = await t.db('usage_events').count<{ n: string }[]>({ n: '*' });
    process.stdout.write(
      `${JSON.stringify({ events: Number(events[0]!.n), customers: CUSTOMERS, time_to_interactive_ms: pages, customers_list_ms: list, load: os.loadavg()[0] }, null, 2)}\n`,
    );
  } finally {
    await t?.close();
    await bench.drop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
