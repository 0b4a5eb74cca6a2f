/**
 * npm run bench:scale: what usage_events costs at millions of events. Loads the table through the
 * batch API up to each total in BENCH_SCALE_STEPS (cumulative; default 2000000, "2000000,10000000"
 * for both), and after each step prints: ingestion events/s; bytes per event of the table and of
 * each index (after VACUUM ANALYZE; partitions summed into their parent, should the table be
 * partitioned); p50/p95 of a customer's reads and of the all-customer reports; what
 * maintainUsagePartitions takes; and a compact
 * EXPLAIN (ANALYZE, BUFFERS) of the statements that use the table's indexes.
 *
 * The load: BENCH_SCALE_CUSTOMERS (100) customers on one plan metering the three metrics, batches of
 * USAGE_MAX_BATCH events, one customer per batch in turn, BENCH_SCALE_CONCURRENCY (8) requests in
 * flight. Each event: metric api_calls, storage_gb or seats; quantity 1..100; a 20-character
 * idempotency key (8 hex digits of the customer id, a dash, an 11-digit counter); occurred_at over
 * the 30 days before the step began, in arrival order with up to 5 minutes of lateness (as live
 * traffic arrives; BENCH_SCALE_OCCURRED=random for uniform random times, a backfill). Reads:
 * BENCH_SCALE_READS (50) requests each, one after the other.
 *
 * BENCH_DATABASE_URL (else TEST_DATABASE_URL, else an embedded PostgreSQL): a database is made there
 * and dropped at the end, on error and on SIGINT. The service runs in this process (createTestApp),
 * Stripe off: every event is stored as local, so the forwarder's partial indexes stay empty.
 */
import os from 'node:os';
import type { AddressInfo } from 'node:net';
import type { Knex } from 'knex';
import { createKnex } from '../src/db/knex';
import { migrateLatest } from '../src/db/migration-source';
import { pooledConnections } from '../src/db/named-statement';
import { maintainUsagePartitions } from '../src/modules/usage-partitions/maintenance';
import { createForwardingRepository } from '../src/modules/usage/forwarding-repository';
import { normalizeQuantity } from '../src/modules/usage/quantity';
import { createUsageRepository } from '../src/modules/usage/usage-repository';
import { createCustomer, createPlan, subscribe } from '../tests/helpers/factories';
import { createTestApp, type TestApp } from '../tests/helpers/test-app';
import { benchDatabase } from './bench-database';
import { keyOf, loadEvents, METRICS, send, type Load } from './usage-load';

const STEPS = (process.env.BENCH_SCALE_STEPS ?? '2000000').split(',').map(Number);
const CUSTOMERS = Number(process.env.BENCH_SCALE_CUSTOMERS ?? 100);
const CONCURRENCY = Number(process.env.BENCH_SCALE_CONCURRENCY ?? 8);
const READS = Number(process.env.BENCH_SCALE_READS ?? 50);
const RANDOM_TIMES = process.env.BENCH_SCALE_OCCURRED === 'random';
const DAY = 86_400_000;
const SPAN = 30 * DAY;
const MAINTENANCE_AHEAD = 2;

const mb = (bytes: number) => (bytes / 1048576).toFixed(1);
const round1 = (x: number) => Math.round(x * 10) / 10;
const fmt = (n: number) => n.toLocaleString('en-US');
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
const log = (line: string) => process.stderr.write(`${line}\n`);

/** usage_events and every partition under it (none while it is a plain table). */
const TREE = `with recursive tree(relid) as (
  select 'usage_events'::regclass::oid
  union all
  select i.inhrelid from pg_inherits i join tree t on i.inhparent = t.relid)`;

interface Sizes {
  rows: number;
  tableBytes: number;
  indexBytes: number;
  partitions: number;
  indexes: { name: string; def: string; bytes: number; pieces: number }[];
  /** Each index (a partition's too) by name, mapped to the index it belongs to. */
  rootIndex: Map<string, string>;
  relations: Set<string>;
}

async function vacuumAnalyze(db: Knex): Promise<number> {
  const { rows } = await db.raw<{ rows: { relname: string; relkind: string }[] }>(
    `${TREE} select c.relname, c.relkind from tree t join pg_class c on c.oid = t.relid`,
  );
  const started = performance.now();
  // A partitioned table's VACUUM goes through its partitions; plain inheritance children are named.
  const names = rows[0]?.relkind === 'p' ? ['usage_events'] : rows.filter((r) => r.relkind === 'r').map((r) => r.relname);
  await db.raw(`vacuum (analyze) ${names.map(() => '??').join(', ')}`, names);
  return performance.now() - started;
}

async function sizes(db: Knex): Promise<Sizes> {
  const rels = await db.raw<{ rows: { relname: string; relkind: string; table_bytes: string; index_bytes: string }[] }>(
    `${TREE} select c.relname, c.relkind, pg_table_size(c.oid) as table_bytes, pg_indexes_size(c.oid) as index_bytes
      from tree t join pg_class c on c.oid = t.relid`,
  );
  // Each index of the tree, walked up pg_inherits to the index it is a partition of.
  const idx = await db.raw<{ rows: { leaf: string; root: string; def: string; kind: string; bytes: string }[] }>(
    `${TREE}, up(leaf, root) as (
       select x.indexrelid, x.indexrelid from pg_index x where x.indrelid in (select relid from tree)
       union all
       select up.leaf, i.inhparent from up join pg_inherits i on i.inhrelid = up.root)
     select l.relname as leaf, r.relname as root, pg_get_indexdef(r.oid) as def, l.relkind as kind, pg_relation_size(l.oid) as bytes
       from up u join pg_class l on l.oid = u.leaf join pg_class r on r.oid = u.root
      where not exists (select 1 from pg_inherits i where i.inhrelid = u.root)`,
  );
  const count = await db.raw<{ rows: { n: string }[] }>('select count(*) as n from usage_events');
  const byRoot = new Map<string, { name: string; def: string; bytes: number; pieces: number }>();
  for (const r of idx.rows) {
    const e = byRoot.get(r.root) ?? { name: r.root, def: r.def, bytes: 0, pieces: 0 };
    e.bytes += Number(r.bytes);
    if (r.kind === 'i') e.pieces++;
    byRoot.set(r.root, e);
  }
  return {
    rows: Number(count.rows[0]!.n),
    tableBytes: rels.rows.reduce((s, r) => s + Number(r.table_bytes), 0),
    indexBytes: rels.rows.reduce((s, r) => s + Number(r.index_bytes), 0),
    partitions: rels.rows.filter((r) => r.relkind === 'r').length - (rels.rows[0]?.relkind === 'r' ? 1 : 0),
    indexes: [...byRoot.values()].sort((a, b) => b.bytes - a.bytes),
    rootIndex: new Map(idx.rows.map((r) => [r.leaf, r.root])),
    relations: new Set(rels.rows.map((r) => r.relname)),
  };
}

/** "(customer_id, occurred_at)" from CREATE INDEX ... USING btree (customer_id, occurred_at): the columns and any WHERE. */
const indexColumns = (def: string) => def.replace(/^.* USING \w+ /, '');

async function latency(n: number, request: () => Promise<Response>): Promise<{ p50: number; p95: number }> {
  const once = async () => {
    const started = performance.now();
    const res = await request();
    const text = await res.text();
    if (res.status !== 200) throw new Error(`${res.url}: ${res.status} ${text.slice(0, 300)}`);
    return performance.now() - started;
  };
  for (let i = 0; i < 3; i++) await once();
  const ms: number[] = [];
  for (let i = 0; i < n; i++) ms.push(await once());
  ms.sort((a, b) => a - b);
  return { p50: round1(quantile(ms, 0.5)), p95: round1(quantile(ms, 0.95)) };
}

interface PlanNode {
  'Node Type': string;
  Operation?: string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Conflict Arbiter Indexes'?: string[];
  'Shared Hit Blocks'?: number;
  'Shared Read Blocks'?: number;
  Plans?: PlanNode[];
}
interface Explained {
  nodes: string;
  ms: number;
  hit: number;
  read: number;
}

/** The plan's nodes that touch usage_events (partitions as their parent, counted), its execution ms and buffers. */
function compact(plan: { Plan: PlanNode; 'Execution Time': number }, s: Sizes): Explained {
  const seen = new Map<string, number>();
  const walk = (p: PlanNode) => {
    const index = p['Index Name'] ? (s.rootIndex.get(p['Index Name']) ?? p['Index Name']) : undefined;
    const onTable = p['Relation Name'] !== undefined && s.relations.has(p['Relation Name']);
    let label: string | undefined;
    const arbiters = p['Conflict Arbiter Indexes'];
    if (arbiters)
      label = `${p.Operation ?? p['Node Type']} on ${onTable ? 'usage_events' : p['Relation Name']} (arbiter ${arbiters.map((i) => s.rootIndex.get(i) ?? i).join(', ')})`;
    else if (index) label = `${p['Node Type']} ${index}`;
    else if (onTable) label = `${p.Operation ?? p['Node Type']} usage_events`;
    if (label) seen.set(label, (seen.get(label) ?? 0) + 1);
    p.Plans?.forEach(walk);
  };
  walk(plan.Plan);
  return {
    nodes: [...seen].map(([label, n]) => (n > 1 ? `${label} ×${n}` : label)).join('; ') || '(no usage_events access)',
    ms: round1(plan['Execution Time']),
    hit: plan.Plan['Shared Hit Blocks'] ?? 0,
    read: plan.Plan['Shared Read Blocks'] ?? 0,
  };
}

/** Runs work in a transaction that is rolled back, and returns the first statement matching `match` it sent. */
async function captureStatement(db: Knex, match: RegExp, work: (trx: Knex.Transaction) => Promise<unknown>): Promise<{ sql: string; bindings: unknown[] }> {
  let found: { sql: string; bindings: unknown[] } | undefined;
  const listen = (q: { sql: string; bindings?: unknown[] }) => {
    if (!found && match.test(q.sql)) found = { sql: q.sql, bindings: q.bindings ?? [] };
  };
  db.on('query', listen);
  const trx = await db.transaction();
  try {
    await work(trx);
  } finally {
    await trx.rollback();
    db.removeListener('query', listen);
  }
  if (!found) throw new Error(`no statement matched ${match}`);
  return found;
}

/** EXPLAIN (ANALYZE, BUFFERS) of a statement on a connection of `db`, in a transaction rolled back. */
async function explainOn(db: Knex, sql: string, values: unknown[]): Promise<{ Plan: PlanNode; 'Execution Time': number }> {
  const pool = pooledConnections(db);
  const conn = await pool.acquireConnection();
  try {
    await conn.query('begin');
    try {
      const { rows } = await conn.query<{ 'QUERY PLAN': [{ Plan: PlanNode; 'Execution Time': number }] }>(
        `explain (analyze, buffers, format json) ${sql}`,
        values,
      );
      return rows[0]!['QUERY PLAN'][0];
    } finally {
      await conn.query('rollback');
    }
  } finally {
    await pool.releaseConnection(conn);
  }
}

/** A PostgreSQL array literal of printable ASCII strings or numbers. */
const pgArray = (xs: readonly (string | number)[]) => `{${xs.map((x) => JSON.stringify(String(x))).join(',')}}`;

/**
 * The replayed batch as the service runs it: its own prepared write statement (usage-repository.ts,
 * WRITE_SQL), EXPLAIN EXECUTE on one of its pooled connections, so with the plan that connection has
 * cached. Parameters as the repository passes them; checked against the statement's types first.
 */
async function explainReplay(t: TestApp, sample: NonNullable<Load['sample']>): Promise<{ Plan: PlanNode; 'Execution Time': number }> {
  const pool = pooledConnections(t.db);
  const conn = await pool.acquireConnection();
  try {
    const { rows } = await conn.query<{ name: string; types: string }>(
      `select name, parameter_types::text as types from pg_prepared_statements where name like 'usage-write-%'`,
    );
    const stmt = rows[0];
    if (!stmt) throw new Error('the write statement is not prepared on this connection');
    const expected = '{uuid[],text[],text[],bigint[],text[],bigint,text,boolean}';
    if (stmt.types !== expected) throw new Error(`the write statement takes ${stmt.types}, not ${expected}: update this bench`);
    const ev = sample.events;
    const args = [
      pgArray(ev.map(() => sample.customer.id)),
      pgArray(ev.map((e) => e.metric)),
      pgArray(ev.map((e) => (normalizeQuantity(e.quantity) as { value: string }).value)),
      pgArray(ev.map((e) => Date.parse(e.occurred_at))),
      pgArray(ev.map((e) => e.idempotency_key)),
      String(Date.now()),
      'local',
      'true',
    ].map((a) => conn.escapeLiteral(a));
    await conn.query('begin');
    try {
      const res = await conn.query<{ 'QUERY PLAN': [{ Plan: PlanNode; 'Execution Time': number }] }>(
        `explain (analyze, buffers, format json) execute ${conn.escapeIdentifier(stmt.name)}(${args.join(', ')})`,
      );
      return res.rows[0]!['QUERY PLAN'][0];
    } finally {
      await conn.query('rollback');
    }
  } finally {
    await pool.releaseConnection(conn);
  }
}

async function explainAll(t: TestApp, db: Knex, load: Load, s: Sizes): Promise<Record<string, Explained | string>> {
  const usage = createUsageRepository();
  const fwd = createForwardingRepository();
  const now = Date.now();
  const ragged = { from: new Date(now - SPAN - 1234567), to: new Date(now - 7654321) };
  const customerId = load.customers[1 % load.customers.length]!.id;
  const anyId = (await db('usage_events').select('id').where({ customer_id: customerId }).orderBy('id').offset(1000).first<{ id: string } | undefined>())?.id;
  const viaStatement = (match: RegExp, work: (trx: Knex.Transaction) => Promise<unknown>) => async () => {
    const { sql, bindings } = await captureStatement(db, match, work);
    return explainOn(db, sql, bindings);
  };
  const cases: [string, () => Promise<{ Plan: PlanNode; 'Execution Time': number }>][] = [
    [`replayed batch of ${load.sample?.events.length} (the write)`, () => explainReplay(t, load.sample!)],
    ['customer totals, 30 days, ragged ends', viaStatement(/^with src/, (trx) => usage.totals(trx, { customerId, ...ragged, groupBy: ['metric'] }))],
    ['all-customer report, 30 days, ragged ends', viaStatement(/^with src/, (trx) => usage.totals(trx, { ...ragged, groupBy: ['customer', 'metric'] }))],
    [
      `forwarder's due claim (limit ${t.c.config.forwarder.batchSize})`,
      viaStatement(/^update usage_outbox e/, (trx) => fwd.claim(trx, t.c.config.forwarder.batchSize, t.c.config.forwarder.leaseSeconds)),
    ],
    ['failed list (limit 50)', viaStatement(/from "usage_outbox"/, (trx) => fwd.listFailed(trx, 50))],
    ['lookup by id (the outbox)', viaStatement(/from "usage_outbox"/, (trx) => fwd.describe(trx, [anyId ?? customerId]))],
  ];
  const out: Record<string, Explained | string> = {};
  for (const [name, run] of cases) {
    try {
      out[name] = compact(await run(), s);
    } catch (err) {
      out[name] = `n/a (${(err as Error).message})`;
    }
  }
  return out;
}

async function maintenance(db: Knex, t: TestApp): Promise<{ ms: number; result: string }> {
  const started = performance.now();
  const result = await maintainUsagePartitions(db, { now: new Date(), ahead: MAINTENANCE_AHEAD, audit: t.c.audit, logger: t.c.logger });
  return { ms: round1(performance.now() - started), result: JSON.stringify(result ?? null).slice(0, 200) };
}

/** How far ahead the packing phase sets the maintenance's clock: every month loaded has settled by then. */
const PACK_AHEAD_DAYS = 70;

/**
 * The loaded events as settled, packed months (src/modules/usage-partitions/packing.ts): the
 * partition maintenance, its clock PACK_AHEAD_DAYS ahead, packs one month a run until none is left.
 * Reports over the loaded days (ragged ends inside them, so they read the packs) are taken before and
 * after and must be equal; then their latency over the packed months, and the bytes of both tables.
 * Last, as it empties usage_events: no write follows (the service's own clock still calls these
 * events recent, so it would not look in the packs).
 */
async function packedPhase(db: Knex, app: TestApp, admin: Record<string, string>, base: string, loaded: number) {
  const now = Date.now();
  const customers = (await db.raw<{ rows: { id: string }[] }>(`select id from customers order by id limit 3`)).rows.map((r) => r.id);
  const ragged = `from=${new Date(now - SPAN + 3 * DAY + 1234567).toISOString()}&to=${new Date(now - 2 * DAY - 7654321).toISOString()}`;
  const paths = [`/api/reports/usage?${ragged}`, `/api/reports/usage?${ragged}&group_by=day`, ...customers.map((c) => `/api/customers/${c}/usage?${ragged}`)];
  const snapshot = async () => Promise.all(paths.map(async (p) => (await fetch(`${base}${p}`, { headers: admin })).text()));
  const before = await snapshot();
  const runs: { month: string; ms: number }[] = [];
  const started = performance.now();
  for (;;) {
    const t0 = performance.now();
    const r = await maintainUsagePartitions(db, { now: new Date(now + PACK_AHEAD_DAYS * DAY), ahead: MAINTENANCE_AHEAD, audit: app.c.audit, pack: true });
    if (r.packed.length === 0) break;
    runs.push({ month: r.packed[0]!.month.slice(0, 7), ms: performance.now() - t0 });
  }
  const packMs = performance.now() - started;
  await db.raw('vacuum analyze usage_event_packs');
  const after = await snapshot();
  const s = await sizes(db);
  const pk = (
    await db.raw<{ rows: { heap: string; toast: string; indexes: string }[] }>(
      `select pg_relation_size(c.oid) as heap, coalesce(pg_total_relation_size(c.reltoastrelid), 0) as toast, pg_indexes_size(c.oid) as indexes
         from pg_class c where c.oid = 'usage_event_packs'::regclass`,
    )
  ).rows[0]!;
  const reads: { key: string; label: string; p50: number; p95: number }[] = [];
  let turn = 0;
  reads.push({
    key: 'customer_ragged',
    label: 'GET /api/customers/:id/usage, 27 days, ragged ends in packed days',
    ...(await latency(READS, () => fetch(`${base}/api/customers/${customers[turn++ % customers.length]}/usage?${ragged}`, { headers: admin }))),
  });
  reads.push({
    key: 'report_ragged',
    label: 'GET /api/reports/usage, all customers, 27 days, ragged ends in packed days',
    ...(await latency(READS, () => fetch(`${base}/api/reports/usage?${ragged}`, { headers: admin }))),
  });
  reads.push({
    key: 'forwarding_report',
    label: 'GET /api/reports/forwarding (counts: the packs carry theirs)',
    ...(await latency(Math.max(5, Math.round(READS / 5)), () => fetch(`${base}/api/reports/forwarding`, { headers: admin }))),
  });
  const packHeap = Number(pk.heap);
  const packToast = Number(pk.toast);
  const packIndexes = Number(pk.indexes);
  const eventsBytes = s.tableBytes + s.indexBytes;
  return {
    months: runs.map((r) => r.month),
    runs,
    packMs,
    sameReports: before.every((b, i) => b === after[i]),
    eventsBytes,
    packHeap,
    packToast,
    packIndexes,
    totalBytes: eventsBytes + packHeap + packToast + packIndexes,
    reads,
    loaded,
  };
}

async function main(): Promise<void> {
  if (STEPS.some((s, i) => !Number.isInteger(s) || s <= 0 || (i > 0 && s <= STEPS[i - 1]!))) {
    throw new Error(`BENCH_SCALE_STEPS must be increasing positive integers, not ${process.env.BENCH_SCALE_STEPS}`);
  }
  const { url, drop } = await benchDatabase('scale');
  let t: TestApp | undefined;
  let db: Knex | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      await t?.close().catch((err: unknown) => console.error(err));
      await db?.destroy();
      await drop();
    })());
  const interrupted = (signal: string) => {
    log(`${signal}: dropping the bench database`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    db = createKnex({ url, poolMax: 2 });
    await migrateLatest(db);
    t = await createTestApp(
      {
        LOG_LEVEL: 'warn',
        STRIPE_ENABLED: 'false',
        FORWARDER_ENABLED: 'false',
        USAGE_METRICS: METRICS.join(','),
        // Every limit raised so the bench measures the work, not the limiter (as npm run bench).
        RATE_LIMIT_API: '100000000/1m',
        RATE_LIMIT_USAGE: '100000000/1m',
        RATE_LIMIT_USAGE_ADDRESS: '100000000/1m',
        RATE_LIMIT_ADMIN: '100000000/1m',
        RATE_LIMIT_AUTH_FAILURES: '100000000/1m',
        // Each key verified once (below, before the load), not again every minute mid-load.
        API_KEY_CACHE_TTL_SECONDS: '3600',
      },
      { databaseUrl: url },
    );
    const app = t;
    const server = app.app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const admin = { Authorization: `Bearer ${app.adminToken}` };

    const setting = async (name: string) => (await db!.raw<{ rows: { v: string }[] }>('select current_setting(?) as v', [name])).rows[0]!.v;
    const pgVersion = await setting('server_version');
    const sharedBuffers = await setting('shared_buffers');
    const machine = {
      cpus: os.cpus().length,
      cpu_model: os.cpus()[0]?.model ?? '',
      memory_gb: round1(os.totalmem() / 1024 ** 3),
      load_1m: round1(os.loadavg()[0]!),
      node: process.version,
      postgres: pgVersion,
      shared_buffers: sharedBuffers,
      database: process.env.BENCH_DATABASE_URL || process.env.TEST_DATABASE_URL ? 'given server' : 'embedded',
    };
    const batch = app.c.config.usage.maxBatch;
    console.log(
      `${machine.cpus} cores (${machine.cpu_model}), ${machine.memory_gb} GB, load ${machine.load_1m}; Node ${machine.node}; ` +
        `PostgreSQL ${pgVersion} (${machine.database}, shared_buffers ${sharedBuffers})`,
    );

    // One plan metering the three metrics with thresholds and an allowance never reached: every
    // write goes through the threshold watch, as in npm run bench.
    const plan = await createPlan(app, {
      entitlements: {
        features: [],
        limits: Object.fromEntries(METRICS.map((m) => [m, 1e12])),
        overage: Object.fromEntries(METRICS.map((m) => [m, 'block'])),
        thresholds: [50, 80, 100],
      },
    });
    const load: Load = { customers: [], counters: [], batch };
    for (let i = 0; i < CUSTOMERS; i++) {
      const c = await createCustomer(app, { company_name: `Scale ${i}` });
      await subscribe(app, { customer: c, plan });
      load.customers.push(c);
      load.counters.push(0);
    }
    // Each key's first use needs bcrypt, a few at a time (AUTH_MAX_CONCURRENT_VERIFICATIONS): done
    // here, one after the other, so the load measures ingestion with the keys remembered.
    for (const c of load.customers) {
      const res = await fetch(`${base}/api/usage`, { headers: { 'X-API-Key': c.apiKey } });
      if (res.status !== 200) throw new Error(`GET /api/usage: ${res.status} ${await res.text()}`);
    }
    console.log(
      `steps ${STEPS.map(fmt).join(', ')} events; ${CUSTOMERS} customers on one plan metering ${METRICS.join(', ')}; ` +
        `batches of ${batch} (USAGE_MAX_BATCH), one customer each, ${CONCURRENCY} in flight; quantity 1..100; ` +
        `idempotency keys of 20 characters (${keyOf(load.customers[0]!, 1)}, ...); ` +
        `occurred_at over the 30 days before each step, ${RANDOM_TIMES ? 'uniformly random (a backfill)' : 'in arrival order, up to 5 minutes late'}; ` +
        `Stripe off (events stored as local); the service in this process, its database pool of 5, keys remembered for an hour`,
    );

    const summary: Record<string, unknown>[] = [];
    let loaded = 0;
    for (const target of STEPS) {
      console.log(`\n## ${fmt(target)} events`);
      const stepEvents = target - loaded;
      log(`loading ${fmt(stepEvents)} events`);
      const ingest = await loadEvents(base, load, loaded, target, { concurrency: CONCURRENCY, randomTimes: RANDOM_TIMES, log });
      loaded = target;
      const eventsPerS = Math.round(stepEvents / (ingest.ms / 1000));
      log('vacuum analyze');
      const vacuumMs = await vacuumAnalyze(db);
      const s = await sizes(db);
      if (s.rows !== target) throw new Error(`usage_events holds ${s.rows} rows, not ${target}`);
      const months = await db.raw<{ rows: { month: string; events: string }[] }>(
        `select to_char(day, 'YYYY-MM') as month, sum(events) as events from usage_daily group by 1 order by 1`,
      );
      const daily = await db.raw<{ rows: { bytes: string; n: string }[] }>(
        `select pg_total_relation_size('usage_daily') as bytes, (select count(*) from usage_daily) as n`,
      );

      console.log(
        `\nloaded ${fmt(stepEvents)} events in ${(ingest.ms / 1000).toFixed(1)} s: **${fmt(eventsPerS)} events/s**` +
          `${ingest.retries ? ` (${ingest.retries} retried)` : ''}; VACUUM ANALYZE ${(vacuumMs / 1000).toFixed(1)} s; ` +
          `months ${months.rows.map((m) => `${m.month}: ${fmt(Number(m.events))}`).join(', ')}; ` +
          `${s.partitions ? `${s.partitions} partitions` : 'a plain table'}`,
      );
      const perEvent = (b: number) => round1(b / s.rows);
      console.log('\n| usage_events | MB | bytes/event |');
      console.log('| --- | --- | --- |');
      console.log(`| total (table + indexes) | ${mb(s.tableBytes + s.indexBytes)} | **${perEvent(s.tableBytes + s.indexBytes)}** |`);
      console.log(`| table (heap, FSM, VM, TOAST) | ${mb(s.tableBytes)} | ${perEvent(s.tableBytes)} |`);
      console.log(`| all indexes | ${mb(s.indexBytes)} | ${perEvent(s.indexBytes)} |`);
      for (const i of s.indexes) {
        console.log(`| ${i.name} ${indexColumns(i.def)}${i.pieces > 1 ? ` (${i.pieces} partitions)` : ''} | ${mb(i.bytes)} | ${perEvent(i.bytes)} |`);
      }
      console.log(`\n(usage_daily, kept by the same write: ${mb(Number(daily.rows[0]!.bytes))} MB with its indexes, ${fmt(Number(daily.rows[0]!.n))} rows.)`);

      // What the same events cost once their months have settled and the partition maintenance has
      // rebuilt their indexes (compactSettled in src/modules/usage-partitions/maintenance.ts): the
      // same REINDEX, on every partition, timed. The reads below run on the rebuilt indexes.
      log('as settled months (indexes rebuilt)');
      const reindexStarted = performance.now();
      const leaves = (
        await db.raw<{ rows: { name: string }[] }>(`${TREE} select c.relname as name from tree t join pg_class c on c.oid = t.relid where c.relkind = 'r'`)
      ).rows;
      for (const l of leaves) await db.raw('reindex table concurrently ??', [l.name]);
      const reindexMs = performance.now() - reindexStarted;
      const settled = await sizes(db);
      console.log(`\n| as settled months (every partition's indexes rebuilt, ${(reindexMs / 1000).toFixed(1)} s) | MB | bytes/event |`);
      console.log('| --- | --- | --- |');
      console.log(`| total (table + indexes) | ${mb(settled.tableBytes + settled.indexBytes)} | **${perEvent(settled.tableBytes + settled.indexBytes)}** |`);
      for (const i of settled.indexes) console.log(`| ${i.name} ${indexColumns(i.def)} | ${mb(i.bytes)} | ${perEvent(i.bytes)} |`);

      log('reads');
      const now = Date.now();
      const ragged = `from=${new Date(now - SPAN - 1234567).toISOString()}&to=${new Date(now - 7654321).toISOString()}`;
      const today = Math.floor(now / DAY) * DAY;
      const aligned = `from=${isoDay(today - SPAN)}&to=${isoDay(today)}`;
      let turn = 0;
      const someone = () => load.customers[turn++ % load.customers.length]!;
      const get = (p: string, headers: Record<string, string>) => fetch(`${base}${p}`, { headers });
      const few = Math.max(5, Math.round(READS / 5));
      const reads: { key: string; label: string; p50: number; p95: number }[] = [];
      const read = async (key: string, label: string, n: number, request: () => Promise<Response>) =>
        void reads.push({ key, label, ...(await latency(n, request)) });
      await read('customer_ragged', 'GET /api/customers/:id/usage, 30 days, ragged ends', READS, () =>
        get(`/api/customers/${someone().id}/usage?${ragged}`, admin),
      );
      await read('customer_days', 'GET /api/customers/:id/usage, 30 whole days', READS, () => get(`/api/customers/${someone().id}/usage?${aligned}`, admin));
      await read('own_month', 'GET /api/usage (own key), the current month (no query)', READS, () => get('/api/usage', { 'X-API-Key': someone().apiKey }));
      await read('own_ragged', 'GET /api/usage (own key), 30 days, ragged ends', READS, () => get(`/api/usage?${ragged}`, { 'X-API-Key': someone().apiKey }));
      await read('report_ragged', 'GET /api/reports/usage, all customers, 30 days, ragged ends', READS, () => get(`/api/reports/usage?${ragged}`, admin));
      await read('report_days', 'GET /api/reports/usage, all customers, 30 whole days', READS, () => get(`/api/reports/usage?${aligned}`, admin));
      await read('forwarding_report', `GET /api/reports/forwarding (counts over the whole table), ${few} requests`, few, () =>
        get('/api/reports/forwarding', admin),
      );
      const sample = load.sample!;
      const replays: number[] = [];
      for (let i = 0; i < 10; i++) {
        const r = await send(base, sample.customer.apiKey, sample.events);
        if (r.status !== 200) throw new Error(`the replayed batch answered ${r.status}, not 200`);
        replays.push(r.ms);
      }
      replays.sort((a, b) => a - b);
      reads.push({
        key: 'replay',
        label: `POST /api/usage, the first batch again (${sample.events.length} events, a replay: 200), 10 requests`,
        p50: round1(quantile(replays, 0.5)),
        p95: round1(quantile(replays, 0.95)),
      });
      console.log(`\nragged: ${ragged}; whole days: ${aligned}`);
      console.log(`\n| request (${READS} each unless said, one at a time, after 3 not counted) | p50 ms | p95 ms |`);
      console.log('| --- | --- | --- |');
      for (const r of reads) console.log(`| ${r.label} | ${r.p50} | ${r.p95} |`);

      log('explain');
      const plans = await explainAll(app, db, load, s);
      console.log('\n| EXPLAIN (ANALYZE, BUFFERS) | usage_events access (partitions counted under their parent) | shared hit / read | ms |');
      console.log('| --- | --- | --- | --- |');
      for (const [name, p] of Object.entries(plans)) {
        console.log(typeof p === 'string' ? `| ${name} | ${p} | | |` : `| ${name} | ${p.nodes} | ${p.hit} / ${p.read} | ${p.ms} |`);
      }

      log('partition maintenance');
      const maint = await maintenance(db, app);
      console.log(`\npartition maintenance (maintainUsagePartitions, ahead ${MAINTENANCE_AHEAD}): ${maint.ms} ms, answered ${maint.result}`);

      summary.push({
        events: target,
        events_per_s: eventsPerS,
        load_s: round1(ingest.ms / 1000),
        retries: ingest.retries,
        vacuum_s: round1(vacuumMs / 1000),
        partitions: s.partitions,
        bytes_per_event: { total: perEvent(s.tableBytes + s.indexBytes), table: perEvent(s.tableBytes), indexes: perEvent(s.indexBytes) },
        settled_bytes_per_event: {
          total: perEvent(settled.tableBytes + settled.indexBytes),
          indexes: perEvent(settled.indexBytes),
          reindex_s: round1(reindexMs / 1000),
        },
        index_bytes_per_event: Object.fromEntries(s.indexes.map((i) => [i.name, perEvent(i.bytes)])),
        latency_ms: Object.fromEntries(reads.map((r) => [r.key, { p50: r.p50, p95: r.p95 }])),
        explain: plans,
        maintenance_ms: maint.ms,
      });
    }

    const packed = await packedPhase(db, app, admin, base, loaded);
    console.log(`\n## ${fmt(loaded)} events as packed months (the partition maintenance with its clock ${PACK_AHEAD_DAYS} days ahead, USAGE_PACK_SETTLED)`);
    console.log(
      `\npacked ${packed.months.join(', ')} in ${(packed.packMs / 1000).toFixed(1)} s (${packed.runs.map((r) => `${r.month}: ${(r.ms / 1000).toFixed(1)} s`).join(', ')})`,
    );
    console.log('\n| as packed months | MB | bytes/event |');
    console.log('| --- | --- | --- |');
    console.log(`| total (usage_events + usage_event_packs) | ${mb(packed.totalBytes)} | **${round1(packed.totalBytes / loaded)}** |`);
    console.log(`| usage_events (emptied partitions: heap and indexes) | ${mb(packed.eventsBytes)} | ${round1(packed.eventsBytes / loaded)} |`);
    console.log(`| usage_event_packs heap | ${mb(packed.packHeap)} | ${round1(packed.packHeap / loaded)} |`);
    console.log(`| usage_event_packs TOAST | ${mb(packed.packToast)} | ${round1(packed.packToast / loaded)} |`);
    console.log(`| usage_event_packs indexes | ${mb(packed.packIndexes)} | ${round1(packed.packIndexes / loaded)} |`);
    console.log(`\nreports over the packed months equal the reports before packing: ${packed.sameReports}`);
    console.log(`\n| request over packed months (${READS} each, one at a time, after 3 not counted) | p50 ms | p95 ms |`);
    console.log('| --- | --- | --- |');
    for (const r of packed.reads) console.log(`| ${r.label} | ${r.p50} | ${r.p95} |`);
    if (!packed.sameReports) throw new Error('a report over the packed months differs from the same report before packing');

    if (summary.length > 1) {
      console.log('\n| events | events/s | bytes/event (table + indexes) | table | indexes | customer read p50 (ragged) | report p50 (ragged) |');
      console.log('| --- | --- | --- | --- | --- | --- | --- |');
      for (const r of summary) {
        const b = r.bytes_per_event as { total: number; table: number; indexes: number };
        const l = r.latency_ms as Record<string, { p50: number }>;
        console.log(
          `| ${fmt(r.events as number)} | ${fmt(r.events_per_s as number)} | ${b.total} | ${b.table} | ${b.indexes} | ${l.customer_ragged!.p50} | ${l.report_ragged!.p50} |`,
        );
      }
    }
    const loadEnd = round1(os.loadavg()[0]!);
    console.log(`\n1-minute load at the end: ${loadEnd}`);
    console.log(
      `\n${JSON.stringify({
        bench: 'scale',
        machine: { ...machine, load_1m_end: loadEnd },
        settings: { steps: STEPS, customers: CUSTOMERS, concurrency: CONCURRENCY, batch, reads: READS, occurred: RANDOM_TIMES ? 'random' : 'arrival order' },
        steps: summary,
        packed: {
          events: loaded,
          bytes_per_event: round1(packed.totalBytes / loaded),
          pack_s: round1(packed.packMs / 1000),
          same_reports: packed.sameReports,
          latency_ms: Object.fromEntries(packed.reads.map((r) => [r.key, { p50: r.p50, p95: r.p95 }])),
        },
      })}`,
    );
  } finally {
    await cleanup();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
