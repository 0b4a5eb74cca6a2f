/**
 * npm run bench:rollup: what the daily-totals upsert (the `roll` CTE of the usage write) costs
 * PostgreSQL, and what the designs without it cost instead.
 *
 * One embedded PostgreSQL, one connection, statements one after another. Every statement is a named
 * prepared statement (as the service sends the write), warmed up before it is measured. The write is
 * exactly what the repository sends: its SQL text and bindings are taken from
 * usage-repository.ts through a stand-in for Knex; the variants are that text edited:
 * - inline: as in production;
 * - no_roll: without the daily totals (the `roll` CTE, and `fresh`, which only `roll` reads);
 * - roll_unordered: `roll` without its `order by`;
 * - trigger_row / trigger_stmt: no_roll, with a row-level trigger (or a statement-level trigger over
 *   the transition table) keeping the daily totals.
 * `inline` writes to the production tables, every other variant to its own copies of them (a schema
 * of its own), so each variant's tables grow alike. The variants run interleaved (their order
 * rotates each iteration), so drift hits them alike, and each difference is the median of
 * per-iteration differences against no_roll.
 *
 * Per statement: the client's round trip; the backend's CPU time (/proc/<pid>/schedstat, Linux);
 * and, in a separate pass through EXPLAIN (ANALYZE, TIMING OFF), the executor's time and the WAL
 * written. Then the read side: a customer's month of totals per metric from usage_daily (as
 * GET /api/usage reads it) against the same from usage_events alone, for customers with
 * ROLLUP_READ_EVENTS events in that month.
 *
 * Settings: ROLLUP_ITERATIONS (300), ROLLUP_WARMUP (30), ROLLUP_EXPLAIN_ITERATIONS (100),
 * ROLLUP_READ_ITERATIONS (20), ROLLUP_READ_EVENTS (100000,1000000), BENCH_OUT (a JSON file to write).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Knex } from 'knex';
import { Client } from 'pg';
import { startEmbeddedPostgres } from '../src/db/embedded-postgres';
import { createKnex } from '../src/db/knex';
import { migrateLatest } from '../src/db/migration-source';
import { createUsageRepository, type EventToWrite } from '../src/modules/usage/usage-repository';

const ITERATIONS = Number(process.env.ROLLUP_ITERATIONS ?? 300);
const WARMUP = Number(process.env.ROLLUP_WARMUP ?? 30);
const EXPLAIN_ITERATIONS = Number(process.env.ROLLUP_EXPLAIN_ITERATIONS ?? 100);
const READ_ITERATIONS = Number(process.env.ROLLUP_READ_ITERATIONS ?? 20);
const READ_EVENTS = (process.env.ROLLUP_READ_EVENTS ?? '100000,1000000').split(',').filter(Boolean).map(Number);
/** The stripe this bench's connection adds to (the service sets one per pooled connection). */
const SHARD = 3;
/** The month the read side reads: fixed, and apart from the days the writes go to. */
const MONTH = { from: new Date('2025-01-01T00:00:00Z'), to: new Date('2025-02-01T00:00:00Z') };

const repo = createUsageRepository();

interface Native {
  text: string;
  values: unknown[];
}

/**
 * The SQL and bindings a repository call sends, in pg's form ($n): the call runs against a stand-in
 * for Knex that records its one statement (a `raw`, or a query on a pooled connection) and answers
 * with no rows, or stops the call there (a write reads its one answer row).
 */
async function capture(knex: Knex, run: (db: Knex) => Promise<unknown>): Promise<Native> {
  let seen: Native | undefined;
  const captured = new Error('captured');
  const noRows = () => Object.assign(Promise.resolve({ rows: [] }), { options: () => Promise.resolve({ rows: [] }) });
  const standIn = {
    isTransaction: false,
    raw(sql: string, bindings: readonly Knex.RawBinding[]) {
      const native = knex.raw(sql, bindings).toSQL().toNative();
      seen = { text: native.sql, values: native.bindings as unknown[] };
      return noRows();
    },
    client: {
      acquireConnection: () =>
        Promise.resolve({
          query: (q: { text: string; values: unknown[] }) => {
            seen = { text: q.text, values: q.values };
            return Promise.reject(captured);
          },
        }),
      releaseConnection: () => Promise.resolve(),
    },
  };
  await run(standIn as unknown as Knex).catch((err: unknown) => {
    if (err !== captured) throw err;
  });
  if (!seen) throw new Error('the repository sent no SQL');
  return seen;
}

function replaceOnce(text: string, find: string, by: string): string {
  const at = text.indexOf(find);
  if (at < 0 || text.indexOf(find, at + 1) >= 0) throw new Error(`expected exactly one ${JSON.stringify(find)} in the write SQL`);
  return text.slice(0, at) + by + text.slice(at + find.length);
}

/** The write without the daily totals: `fresh` and `roll` cut out (nothing else reads `fresh`). */
function withoutRoll(text: string): string {
  const start = text.indexOf('), fresh as (');
  const end = text.indexOf('), verdict as (');
  if (start < 0 || end < start) throw new Error('the write SQL no longer has fresh/roll before verdict');
  const cut = text.slice(0, start) + text.slice(end);
  if (/usage_daily|\broll\b|from fresh/.test(cut)) throw new Error('the write SQL still reads fresh or roll');
  return cut;
}

/**
 * Each variant but `inline` writes to its own copy of usage_events and usage_daily (a schema of its
 * own, constraint names as in production), so every variant's tables grow alike and the production
 * text runs on them with only the table names qualified.
 */
function inSchema(text: string, schema: string): string {
  let out = replaceOnce(text, 'insert into usage_events as e', `insert into ${schema}.usage_events as e`);
  if (out.includes('insert into usage_daily as d')) out = replaceOnce(out, 'insert into usage_daily as d', `insert into ${schema}.usage_daily as d`);
  return out;
}

interface WriteVariant {
  name: string;
  /** null: the production tables. */
  schema: string | null;
  transform: (text: string) => string;
}

const WRITE_VARIANTS: WriteVariant[] = [
  { name: 'inline', schema: null, transform: (t) => t },
  { name: 'no_roll', schema: 'bench_no_roll', transform: (t) => inSchema(withoutRoll(t), 'bench_no_roll') },
  {
    name: 'roll_unordered',
    schema: 'bench_roll_unordered',
    transform: (t) => inSchema(replaceOnce(t, 'group by 1, 2, 3 order by 1, 2, 3', 'group by 1, 2, 3'), 'bench_roll_unordered'),
  },
  { name: 'trigger_row', schema: 'bench_trigger_row', transform: (t) => inSchema(withoutRoll(t), 'bench_trigger_row') },
  { name: 'trigger_stmt', schema: 'bench_trigger_stmt', transform: (t) => inSchema(withoutRoll(t), 'bench_trigger_stmt') },
];

/** The copies (with the foreign keys LIKE leaves out, and the constraint names the write SQL names). */
function copyDdl(schema: string): string[] {
  return [
    `create schema ${schema}`,
    ...['usage_events', 'usage_daily'].flatMap((t) => [
      `create table ${schema}.${t} (like public.${t} including all)`,
      `alter table ${schema}.${t} add foreign key (customer_id) references public.customers (id)`,
    ]),
    // The primary keys are named <table>_pkey already; the unique constraint is not.
    `do $do$ begin
       execute format('alter table ${schema}.usage_events rename constraint %I to usage_events_customer_idempotency_unique',
         (select conname from pg_constraint where conrelid = '${schema}.usage_events'::regclass and contype = 'u'));
     end $do$`,
  ];
}

const TRIGGER_DDL = [
  // The common naive design: one upsert per inserted row.
  `create function bench_trigger_row.roll() returns trigger language plpgsql as $fn$
   begin
     insert into bench_trigger_row.usage_daily as d (customer_id, metric, day, shard, quantity, events)
     values (new.customer_id, new.metric, (new.occurred_at at time zone 'UTC')::date,
             coalesce(nullif(current_setting('billing.rollup_shard', true), ''), '0')::smallint, new.quantity, 1)
     on conflict on constraint usage_daily_pkey do update
       set quantity = d.quantity + excluded.quantity, events = d.events + excluded.events;
     return null;
   end $fn$`,
  'create trigger roll after insert on bench_trigger_row.usage_events for each row execute function bench_trigger_row.roll()',
  // One upsert per statement, over the rows it inserted (the roll CTE's SQL).
  `create function bench_trigger_stmt.roll() returns trigger language plpgsql as $fn$
   begin
     insert into bench_trigger_stmt.usage_daily as d (customer_id, metric, day, shard, quantity, events)
     select customer_id, metric, (occurred_at at time zone 'UTC')::date,
            coalesce(nullif(current_setting('billing.rollup_shard', true), ''), '0')::smallint, sum(quantity), count(*)
       from inserted group by 1, 2, 3 order by 1, 2, 3
     on conflict on constraint usage_daily_pkey do update
       set quantity = d.quantity + excluded.quantity, events = d.events + excluded.events;
     return null;
   end $fn$`,
  'create trigger roll after insert on bench_trigger_stmt.usage_events referencing new table as inserted for each statement execute function bench_trigger_stmt.roll()',
];

interface WriteScenario {
  id: string;
  label: string;
  events: number;
  customers: number;
  /** A batch (all or nothing) rather than a group commit of single events. */
  batch: boolean;
  /** Every key already stored (with the same body): nothing is inserted. */
  replay: boolean;
}

const SCENARIOS: WriteScenario[] = [
  { id: 'batch100', label: 'batch of 100, 1 customer', events: 100, customers: 1, batch: true, replay: false },
  { id: 'group1', label: 'group of 1', events: 1, customers: 1, batch: false, replay: false },
  { id: 'group10', label: 'group of 10, 1 customer', events: 10, customers: 1, batch: false, replay: false },
  { id: 'group50', label: 'group of 50, 1 customer', events: 50, customers: 1, batch: false, replay: false },
  { id: 'group50x10', label: 'group of 50, 10 customers', events: 50, customers: 10, batch: false, replay: false },
  { id: 'replay10', label: 'replay group of 10 (keys stored)', events: 10, customers: 1, batch: false, replay: true },
  { id: 'replay100', label: 'replay batch of 100 (keys stored)', events: 100, customers: 1, batch: true, replay: true },
];

interface Samples {
  rtt: number[];
  cpu: number[];
  exec: number[];
  wal: number[];
}

const quantile = (xs: number[], q: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};
const median = (xs: number[]) => quantile(xs, 0.5);
/** Median of per-iteration differences (the variants ran interleaved, iteration by iteration). */
const pairedDelta = (a: number[], b: number[]) => median(a.slice(0, Math.min(a.length, b.length)).map((x, i) => x - b[i]!));
const fmt = (x: number, digits = 0) => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');

/** On-CPU time of a process so far, in nanoseconds (Linux schedstat), or null where unreadable. */
function cpuNs(pid: number): number | null {
  try {
    return Number(fs.readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
  } catch {
    return null;
  }
}

type ExplainRow = { 'QUERY PLAN': [{ 'Execution Time': number }] };

class Bench {
  constructor(
    private readonly client: Client,
    private readonly backendPid: number,
  ) {}

  /** One named statement: round trip and backend CPU in µs. */
  async timed(name: string, n: Native): Promise<{ rtt: number; cpu: number; rows: unknown[] }> {
    const c0 = cpuNs(this.backendPid);
    const t0 = performance.now();
    const r = await this.client.query({ name, text: n.text, values: n.values });
    const rtt = (performance.now() - t0) * 1000;
    const c1 = cpuNs(this.backendPid);
    return { rtt, cpu: c0 === null || c1 === null ? NaN : (c1 - c0) / 1000, rows: r.rows };
  }

  /** The same statement under EXPLAIN (ANALYZE, TIMING OFF): executor time in µs, WAL bytes. */
  async explained(name: string, n: Native): Promise<{ exec: number; wal: number }> {
    const lsn = await this.client.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn');
    const r = await this.client.query<ExplainRow>({ name: `${name}-explain`, text: `explain (analyze, timing off, format json) ${n.text}`, values: n.values });
    const wal = await this.client.query<{ bytes: string }>('select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::pg_lsn)::text as bytes', [
      lsn.rows[0]!.lsn,
    ]);
    return { exec: r.rows[0]!['QUERY PLAN'][0]['Execution Time'] * 1000, wal: Number(wal.rows[0]!.bytes) };
  }
}

async function runWrites(bench: Bench, knex: Knex, customers: string[]) {
  const results: Record<string, Record<string, Samples>> = {};
  for (const sc of SCENARIOS) {
    const makeEvents = (tag: string): EventToWrite[] =>
      Array.from({ length: sc.events }, (_, j) => ({
        customerId: customers[j % sc.customers]!,
        metric: 'api_calls',
        quantity: '1',
        idempotencyKey: `${tag}-${String(j).padStart(3, '0')}`,
      }));
    const write = (events: EventToWrite[]) =>
      capture(knex, (db) => (sc.batch ? repo.writeAllOrNothing(db, events, 'pending', Date.now()) : repo.write(db, events, 'pending', Date.now())));
    const stored = sc.replay ? makeEvents(`${sc.id}-stored`) : null;
    const samples: Record<string, Samples> = Object.fromEntries(WRITE_VARIANTS.map((v) => [v.name, { rtt: [], cpu: [], exec: [], wal: [] }]));
    const oneWrite = async (v: WriteVariant, n: Native) => {
      const r = await bench.timed(`rollup-${v.name}`, { text: v.transform(n.text), values: n.values });
      // The write answers in one row listing every event given.
      const listed = (r.rows[0] as { events?: string } | undefined)?.events?.split(',').length ?? 0;
      if (listed !== sc.events) throw new Error(`${v.name}: ${listed} events answered for ${sc.events}`);
      return r;
    };
    if (stored) for (const v of WRITE_VARIANTS) await oneWrite(v, await write(stored));

    const phases = [
      { kind: 'warmup', n: WARMUP },
      { kind: 'measure', n: ITERATIONS },
      { kind: 'explain', n: Math.min(WARMUP, 10) + EXPLAIN_ITERATIONS },
    ] as const;
    for (const phase of phases) {
      for (let i = 0; i < phase.n; i++) {
        for (let k = 0; k < WRITE_VARIANTS.length; k++) {
          const at = (i + k) % WRITE_VARIANTS.length;
          const v = WRITE_VARIANTS[at]!;
          // Keys of one length for every variant, so each variant's tables lay out alike.
          const n = await write(stored ?? makeEvents(`${sc.id}-${at}-${phase.kind}-${i}`));
          const s = samples[v.name]!;
          if (phase.kind === 'explain') {
            const e = await bench.explained(`rollup-${v.name}`, { text: v.transform(n.text), values: n.values });
            if (i >= Math.min(WARMUP, 10)) {
              s.exec.push(e.exec);
              s.wal.push(e.wal);
            }
          } else {
            const r = await oneWrite(v, n);
            if ((r.rows as { created: boolean }[]).some((row) => row.created === sc.replay)) throw new Error(`${v.name}: unexpected created flags`);
            if (phase.kind === 'measure') {
              s.rtt.push(r.rtt);
              s.cpu.push(r.cpu);
            }
          }
        }
      }
    }
    results[sc.id] = samples;
    const m = samples.inline!;
    console.log(`${sc.label}: inline p50 ${fmt(median(m.rtt))} µs, no_roll p50 ${fmt(median(samples.no_roll!.rtt))} µs`);
  }
  return results;
}

/** Every variant that keeps daily totals must hold what it inserted (checked before the read side's seeding). */
async function checkTotals(client: Client) {
  for (const v of WRITE_VARIANTS) {
    if (v.name === 'no_roll') continue;
    const schema = v.schema ?? 'public';
    const { rows } = await client.query<{ events: string; rolled: string }>(
      `select (select count(*) from ${schema}.usage_events)::text as events, (select coalesce(sum(events), 0) from ${schema}.usage_daily)::text as rolled`,
    );
    if (rows[0]!.events !== rows[0]!.rolled) throw new Error(`${v.name}: ${rows[0]!.events} events but ${rows[0]!.rolled} in the daily totals`);
  }
}

/** A customer with `n` events spread over MONTH in three metrics, and their daily totals in 16 stripes. */
async function seedMonth(client: Client, customerId: string, n: number) {
  await client.query(
    `insert into usage_events (id, customer_id, metric, quantity, occurred_at, idempotency_key, request_hash, state, received_at)
     select usage_uuidv7(), $1, (array['api_calls', 'storage_gb', 'builds'])[1 + i % 3], 1 + i % 5, t, 'gen-' || i, md5(i::text), 'sent', t
       from generate_series(1, $4::int) i,
            lateral (select $2::timestamptz + ((i - 1)::float8 / $4::int) * ($3::timestamptz - $2::timestamptz) as t) x`,
    [customerId, MONTH.from.toISOString(), MONTH.to.toISOString(), n],
  );
  await client.query(
    `insert into usage_daily (customer_id, metric, day, shard, quantity, events)
     select customer_id, metric, (occurred_at at time zone 'UTC')::date, (hashtext(idempotency_key) & 15)::smallint, sum(quantity), count(*)
       from usage_events where customer_id = $1 group by 1, 2, 3, 4`,
    [customerId],
  );
  await client.query(
    `insert into bench_daily_unsharded select customer_id, metric, day, 0, sum(quantity), sum(events) from usage_daily where customer_id = $1 group by 1, 2, 3`,
    [customerId],
  );
}

interface ReadResult {
  events: number;
  read: string;
  rtt_p50_us: number;
  rtt_p90_us: number;
  exec_p50_us: number;
}

async function runReads(bench: Bench, knex: Knex, readers: { id: string; events: number }[]): Promise<ReadResult[]> {
  const totals = (to: Date) => (id: string) => capture(knex, (db) => repo.totals(db, { customerId: id, from: MONTH.from, to, groupBy: ['metric'] }));
  const month = totals(MONTH.to);
  const reads: { name: string; native: (id: string) => Promise<Native> }[] = [
    { name: 'usage_daily: whole month (GET /api/usage)', native: month },
    {
      name: 'usage_daily, 1 stripe per day: whole month',
      native: async (id) => {
        const n = await month(id);
        return { ...n, text: replaceOnce(n.text, 'from usage_daily d', 'from bench_daily_unsharded d') };
      },
    },
    { name: 'usage_daily + events: to the 16th, 12:00', native: totals(new Date(MONTH.from.getTime() + 15.5 * 86_400_000)) },
    {
      name: 'usage_events only: whole month',
      native: (id) =>
        Promise.resolve({
          text: `select e.metric, sum(e.quantity)::text as quantity, count(*)::bigint as events
                   from usage_events e where e.customer_id = $1 and e.occurred_at >= $2 and e.occurred_at < $3
                  group by e.metric order by e.metric`,
          values: [id, MONTH.from.toISOString(), MONTH.to.toISOString()],
        }),
    },
  ];
  const out: ReadResult[] = [];
  for (const r of readers) {
    const answers = new Map<string, string>();
    const samples = reads.map(() => ({ rtt: [] as number[], exec: [] as number[] }));
    const explainN = Math.max(3, Math.floor(READ_ITERATIONS / 4));
    for (let i = 0; i < 3 + READ_ITERATIONS + explainN; i++) {
      for (let k = 0; k < reads.length; k++) {
        const j = (i + k) % reads.length;
        const read = reads[j]!;
        const n = await read.native(r.id);
        const name = `rollup-read-${j}`;
        if (i < 3 + READ_ITERATIONS) {
          const t = await bench.timed(name, n);
          if (i >= 3) samples[j]!.rtt.push(t.rtt);
          answers.set(read.name, JSON.stringify(t.rows.map((row) => ({ ...(row as object) }))));
        } else {
          samples[j]!.exec.push((await bench.explained(name, n)).exec);
        }
      }
    }
    // The whole-month answers must agree, whichever table they come from.
    const whole = reads.filter((x) => x.name.includes('whole month')).map((x) => answers.get(x.name));
    if (new Set(whole).size !== 1) throw new Error(`the whole-month totals differ: ${whole.join(' / ')}`);
    reads.forEach((read, j) => {
      const s = samples[j]!;
      out.push({ events: r.events, read: read.name, rtt_p50_us: median(s.rtt), rtt_p90_us: quantile(s.rtt, 0.9), exec_p50_us: median(s.exec) });
    });
    console.log(`reads for a customer with ${r.events} events in the month: done`);
  }
  return out;
}

async function main(): Promise<void> {
  const started = performance.now();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-bench-rollup-'));
  fs.chmodSync(dir, 0o755);
  const pg = await startEmbeddedPostgres({ dataDir: dir, port: 0, persistent: false, database: 'billing_bench' });
  // The service's own pieces: its Knex (which sets the rollup stripe per connection) and migrations.
  const knex = createKnex({ url: pg.url, poolMax: 1 });
  const client = new Client({ connectionString: pg.url });
  try {
    await migrateLatest(knex);
    await client.connect();
    await client.query(`set billing.rollup_shard = ${SHARD}`);
    for (const ddl of [...WRITE_VARIANTS.flatMap((v) => (v.schema ? copyDdl(v.schema) : [])), ...TRIGGER_DDL]) await client.query(ddl);
    await client.query('create table bench_daily_unsharded (like usage_daily including all)');
    const { rows: ids } = await client.query<{ id: string }>(
      `insert into customers (email, company_name) select 'bench' || i || '@example.com', 'Bench ' || i from generate_series(1, $1::int) i returning id`,
      [10 + READ_EVENTS.length],
    );
    const customers = ids.map((r) => r.id);
    const { rows: info } = await client.query<{ pid: number; version: string }>('select pg_backend_pid() as pid, version() as version');
    const bench = new Bench(client, info[0]!.pid);
    const cpuReadable = cpuNs(info[0]!.pid) !== null;
    console.log(`${info[0]!.version}; ${os.cpus().length} CPUs; ${ITERATIONS} iterations (warm-up ${WARMUP}, EXPLAIN ${EXPLAIN_ITERATIONS}) per variant`);

    const writes = await runWrites(bench, knex, customers.slice(0, 10));
    await checkTotals(client);

    const seedStart = performance.now();
    const readers = READ_EVENTS.map((events, i) => ({ id: customers[10 + i]!, events }));
    for (const r of readers) await seedMonth(client, r.id, r.events);
    for (const t of ['usage_events', 'usage_daily', 'bench_daily_unsharded']) await client.query(`vacuum analyze ${t}`);
    console.log(`seeded ${READ_EVENTS.join(' + ')} events in ${fmt((performance.now() - seedStart) / 1000, 1)} s`);
    const reads = await runReads(bench, knex, readers);

    // Tables.
    const writeRows = SCENARIOS.flatMap((sc) =>
      WRITE_VARIANTS.map((v) => {
        const s = writes[sc.id]![v.name]!;
        const base = writes[sc.id]!.no_roll!;
        return {
          scenario: sc.id,
          label: sc.label,
          events: sc.events,
          variant: v.name,
          rtt_p50_us: median(s.rtt),
          rtt_p90_us: quantile(s.rtt, 0.9),
          cpu_p50_us: median(s.cpu),
          exec_p50_us: median(s.exec),
          wal_p50_bytes: median(s.wal),
          // Against no_roll: the daily totals' share of this variant's statement.
          delta_rtt_us: v.name === 'no_roll' ? 0 : pairedDelta(s.rtt, base.rtt),
          delta_cpu_us: v.name === 'no_roll' ? 0 : pairedDelta(s.cpu, base.cpu),
          delta_exec_us: v.name === 'no_roll' ? 0 : pairedDelta(s.exec, base.exec),
          delta_wal_bytes: v.name === 'no_roll' ? 0 : pairedDelta(s.wal, base.wal),
        };
      }),
    );

    console.log('\n### Writes: one statement, sequential (µs; WAL in bytes per statement)\n');
    console.log('| scenario | variant | RTT p50 | RTT p90 | backend CPU p50 | exec p50 (EXPLAIN) | WAL |');
    console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: |');
    for (const r of writeRows) {
      console.log(
        `| ${r.label} | ${r.variant} | ${fmt(r.rtt_p50_us)} | ${fmt(r.rtt_p90_us)} | ${fmt(r.cpu_p50_us)} | ${fmt(r.exec_p50_us)} | ${fmt(r.wal_p50_bytes)} |`,
      );
    }

    console.log('\n### Daily totals: cost over no_roll (median of paired differences; per event = Δ / events inserted)\n');
    console.log(
      '| scenario | variant | Δ RTT µs | Δ RTT / event | share of RTT | Δ CPU µs | Δ CPU / event | Δ exec µs | Δ exec / event | share of exec | Δ WAL B |',
    );
    console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const r of writeRows) {
      if (r.variant === 'no_roll') continue;
      const per = SCENARIOS.find((s) => s.id === r.scenario)!.replay ? NaN : r.events;
      const pct = (d: number, of: number) => `${fmt((100 * d) / of)}%`;
      console.log(
        `| ${r.label} | ${r.variant} | ${fmt(r.delta_rtt_us)} | ${fmt(r.delta_rtt_us / per, 1)} | ${pct(r.delta_rtt_us, r.rtt_p50_us)} | ${fmt(r.delta_cpu_us)} | ${fmt(r.delta_cpu_us / per, 1)} | ${fmt(r.delta_exec_us)} | ${fmt(r.delta_exec_us / per, 1)} | ${pct(r.delta_exec_us, r.exec_p50_us)} | ${fmt(r.delta_wal_bytes)} |`,
      );
    }

    console.log(`\n### Reads: one customer's month, totals per metric (µs; ${READ_ITERATIONS} iterations)\n`);
    console.log('| events in the month | read | RTT p50 | RTT p90 | exec p50 (EXPLAIN) |');
    console.log('| ---: | --- | ---: | ---: | ---: |');
    for (const r of reads) console.log(`| ${r.events} | ${r.read} | ${fmt(r.rtt_p50_us)} | ${fmt(r.rtt_p90_us)} | ${fmt(r.exec_p50_us)} |`);
    if (!cpuReadable) console.log('\n(backend CPU: /proc/<pid>/schedstat not readable here)');
    const seconds = (performance.now() - started) / 1000;
    console.log(`\n${fmt(seconds, 1)} s in all`);

    if (process.env.BENCH_OUT) {
      const settings = { iterations: ITERATIONS, warmup: WARMUP, explain_iterations: EXPLAIN_ITERATIONS, read_iterations: READ_ITERATIONS, shard: SHARD };
      const out = { postgres: info[0]!.version, cpus: os.cpus().length, settings, writes: writeRows, reads, seconds };
      fs.writeFileSync(process.env.BENCH_OUT, `${JSON.stringify(out, null, 2)}\n`);
      console.log(`wrote ${process.env.BENCH_OUT}`);
    }
  } finally {
    await client.end().catch(() => undefined);
    await knex.destroy();
    await pg.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
