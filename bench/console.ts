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
 * - The server time of each call the overview page makes, one at a time, with every customer
 *   subscribed (GET /api/reports/overview applies the license rule to each active customer).
 *
 * The usage: 100 customers, each subscribed, loaded through the batch API (bench/usage-load.ts); the
 * other customers are inserted directly, each with a subscription (BENCH_CONSOLE_SUBSCRIBED, 1 = all
 * of them) in a fleet's mix of states: active, trialing, past due (in grace and past it), canceled,
 * and one in ten with an older canceled subscription beside its live one. BENCH_DATABASE_URL (else
 * TEST_DATABASE_URL, else an embedded PostgreSQL): a database is made there and dropped at the end.
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
const SUBSCRIBED = Number(process.env.BENCH_CONSOLE_SUBSCRIBED ?? 1);
const LOADED = 100;
const DAY_MS = 86_400_000;
const log = (line: string) => process.stderr.write(`${line}\n`);
const round1 = (x: number) => Math.round(x * 10) / 10;
const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
const summary = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: round1(quantile(s, 0.5)), p95: round1(quantile(s, 0.95)), max: round1(s[s.length - 1]!) };
};

/** The i-th inserted customer's subscriptions: the mix a fleet has (see the header). */
function subscriptionsOf(i: number, customerId: string, planId: string, nowMs: number): Record<string, unknown>[] {
  const at = (days: number) => new Date(nowMs + days * DAY_MS);
  const base = { customer_id: customerId, plan_id: planId, stripe_subscription_id: `sub_bench${i}`, current_period_start: at(-10), current_period_end: at(20) };
  const kind = i % 20;
  const live =
    kind < 14
      ? { status: 'active' }
      : kind < 16
        ? { status: 'trialing', trial_end: at(5) }
        : kind < 18
          ? { status: 'past_due', payment_failing_since: at(kind === 16 ? -1 : -30) } // in grace, past it
          : { status: 'canceled', canceled_at: at(-40), current_period_end: at(-40) };
  const rows: Record<string, unknown>[] = [{ id: uuidv7(), ...base, ...live }];
  if (i % 10 === 0)
    rows.push({ id: uuidv7(), ...base, stripe_subscription_id: `sub_bench${i}_old`, status: 'canceled', canceled_at: at(-90), current_period_end: at(-90) });
  return rows;
}

async function insertCustomers(t: TestApp, n: number, planId: string): Promise<void> {
  const words = ['Acme', 'Globex', 'Initech', 'Umbrella', 'Hooli', 'Stark', 'Wayne', 'Tyrell'];
  const nowMs = Date.now();
  for (let done = 0; done < n;) {
    const size = Math.min(5000, n - done);
    const rows = Array.from({ length: size }, (_v, k) => {
      const i = done + k;
      return { id: uuidv7(), email: `ops${i}@customer${i}.example`, company_name: `${words[i % words.length]} ${i} Ltd`, status: 'active' as const };
    });
    await t.db('customers').insert(rows);
    const subscribed = rows.filter((_r, k) => (done + k) % 1000 < SUBSCRIBED * 1000);
    const subs = subscribed.flatMap((r, k) => subscriptionsOf(done + k, r.id, planId, nowMs));
    for (let k = 0; k < subs.length; k += 2000) await t.db('subscriptions').insert(subs.slice(k, k + 2000) as never);
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
    await insertCustomers(t, CUSTOMERS - LOADED, (await t.db('plans').where({ code: plan }).first('id'))!.id);
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
    const day = (offset: number) => new Date(Date.now() + offset * DAY_MS).toISOString().slice(0, 10);
    const overviewCalls = {
      overview: await listTimes(base, token, '/api/reports/overview'),
      usage_30_days: await listTimes(base, token, `/api/reports/usage?from=${day(-29)}&to=${day(1)}&group_by=day`),
      forwarding: await listTimes(base, token, '/api/reports/forwarding'),
      webhooks: await listTimes(base, token, '/api/reports/webhooks'),
      preflight: await listTimes(base, token, '/api/reports/preflight'),
    };
    const subscriptions = await t.db('subscriptions').count<{ n: string }[]>({ n: '*' });

    const browser = await launchChromium(executablePath, []);
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await page.goto(`http://localhost:${port}/console/sign-in`);
    await page.getByLabel('Admin token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();

    // The moment every ready selector exists, read in the page by a MutationObserver that an init
    // script (added over CDP: the page's policy forbids inline script) starts before the page's own.
    // Reading performance.now() after Playwright's waits instead added their polling interval (up to
    // half a second when the data arrived between two polls).
    let readySelectors: string[] = [];
    await page.exposeBinding('benchReadySelectors', () => readySelectors);
    await page.addInitScript(`
      window.benchReadySelectors().then((selectors) => {
        const check = () => {
          if (window.benchReadyAt === undefined && selectors.every((s) => document.querySelector(s))) window.benchReadyAt = performance.now();
        };
        new MutationObserver(check).observe(document, { subtree: true, childList: true, characterData: true });
        check();
      });`);
    const tti = async (path: string, ready: string[]) => {
      readySelectors = ready;
      const times: number[] = [];
      for (let i = 0; i <= RUNS; i++) {
        await page.goto(`http://localhost:${port}${path}`);
        for (const selector of ready) await page.locator(selector).first().waitFor();
        const ms = await page.evaluate<number | undefined>('window.benchReadyAt');
        if (ms === undefined) throw new Error(`${path}: the page's ready time was not recorded`);
        if (i > 0) times.push(ms); // the first warms the caches
      }
      // The last load's API calls as the page saw them: start and end (ms from the navigation).
      const calls = await page.evaluate<{ path: string; start: number; end: number }[]>(
        "performance.getEntriesByType('resource').filter((e) => e.name.includes('/api/')).map((e) => ({ path: new URL(e.name).pathname, start: Math.round(e.startTime), end: Math.round(e.responseEnd) }))",
      );
      return { ...summary(times), last_load_calls: calls };
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
      `${JSON.stringify(
        {
          events: Number(events[0]!.n),
          customers: CUSTOMERS,
          subscriptions: Number(subscriptions[0]!.n),
          time_to_interactive_ms: pages,
          customers_list_ms: list,
          overview_page_calls_ms: overviewCalls,
          load: os.loadavg()[0],
        },
        null,
        2,
      )}\n`,
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
