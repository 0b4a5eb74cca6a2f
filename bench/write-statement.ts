/**
 * `npm run bench:write`: what the usage write costs PostgreSQL, by the shape of its text
 * (usage-repository.ts, writeSql): with the lookup of a retry stamped at receipt (events sent without
 * occurred_at) or without it, and with Stripe off or on (the outbox insert). The statement alone, as
 * the service prepares it, on a connection per shape, alternated statement by statement so the shapes
 * share the machine's state; no HTTP, no Node work but pg's. For what the whole request costs against
 * an earlier release, `npm run bench:versions`.
 *
 * The database holds 13 months of partitions (as USAGE_RETENTION_MONTHS keeps them) and 3 ahead.
 * Commits are not waited for (synchronous_commit off): the figure is the statement's work, not the
 * disk's. Settings: BENCH_ROUNDS (7), BENCH_DATABASE_URL (else TEST_DATABASE_URL, else an embedded
 * PostgreSQL for the run).
 */
import pg from 'pg';
import { benchDatabase } from './bench-database';
import { createKnex } from '../src/db/knex';
import { migrateLatest } from '../src/db/migration-source';
import { maintainUsagePartitions } from '../src/modules/usage-partitions/maintenance';
import { lookbackMonths, writeSql, type WriteShape } from '../src/modules/usage/usage-repository';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const SINGLES = 400;
const BATCHES = 50;
const BATCH = 100;

interface Shape {
  name: string;
  shape: WriteShape;
  stamped: boolean;
  client: pg.Client;
}

async function main() {
  const database = await benchDatabase('write');
  const db = createKnex({ url: database.url, poolMax: 2 });
  const clients: pg.Client[] = [];
  try {
    await migrateLatest(db);
    // The partitions' audit rows are no part of what is measured.
    const audit = { record: () => Promise.resolve() };
    const now = new Date();
    for (let back = 12; back >= 0; back--) {
      const at = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - back, 15));
      await maintainUsagePartitions(db, { audit, now: back === 0 ? now : at, ahead: back === 0 ? 3 : 0 });
    }
    const { rows: parts } = await db.raw<{ rows: unknown[] }>(`select 1 from pg_inherits where inhparent = 'usage_events'::regclass`);
    const customers: string[] = [];
    for (let i = 0; i < 20; i++) {
      const [row] = await db('customers')
        .insert({ email: `write-${i}@bench.example`, company_name: `Bench ${i}` })
        .returning('id');
      customers.push((row as { id: string }).id);
    }
    const lookIn = lookbackMonths(now.getTime());
    const shapes: Omit<Shape, 'client'>[] = [
      { name: 'stamped at receipt, Stripe off', shape: { lookIn, forward: false }, stamped: true },
      { name: 'occurred_at given, Stripe off', shape: { lookIn: [], forward: false }, stamped: false },
      { name: 'stamped at receipt, Stripe on', shape: { lookIn, forward: true }, stamped: true },
      { name: 'occurred_at given, Stripe on', shape: { lookIn: [], forward: true }, stamped: false },
    ];
    const targets: Shape[] = [];
    for (const s of shapes) {
      const client = new pg.Client({ connectionString: database.url });
      await client.connect();
      await client.query('set synchronous_commit = off');
      clients.push(client);
      targets.push({ ...s, client });
    }

    let n = 0;
    const run = async (t: Shape, size: number): Promise<number> => {
      const ids = Array.from({ length: size }, (_, i) => customers[(n + i) % customers.length]!);
      const keys = Array.from({ length: size }, () => `w-${process.pid}-${++n}`);
      const nowMs = Date.now();
      const values = [
        `{${ids.join(',')}}`,
        `{${ids.map(() => '"api_calls"').join(',')}}`,
        `{${ids.map(() => '"1"').join(',')}}`,
        `{${ids.map(() => (t.stamped ? 'NULL' : String(nowMs - 1000))).join(',')}}`,
        `{${keys.map((k) => `"${k}"`).join(',')}}`,
        nowMs,
        t.shape.forward ? 'pending' : 'local',
        size > 1,
      ];
      const started = process.hrtime.bigint();
      const { rows } = await t.client.query<{ events: string | null }>({ name: `${t.name}-${size}`, text: writeSql(t.shape), values });
      const us = Number(process.hrtime.bigint() - started) / 1000;
      if (!rows[0]?.events) throw new Error(`${t.name}: nothing written`);
      return us;
    };

    console.log(`${parts.length} partitions; ${ROUNDS} rounds of ${SINGLES} single events and ${BATCHES} batches of ${BATCH}, shapes alternated`);
    const results = new Map<string, number[]>();
    for (let round = 0; round < ROUNDS; round++) {
      const sums = new Map<string, number>();
      const add = (key: string, us: number) => sums.set(key, (sums.get(key) ?? 0) + us);
      for (let i = 0; i < SINGLES; i++) for (const t of targets) add(`${t.name}|single`, (await run(t, 1)) / SINGLES);
      for (let i = 0; i < BATCHES; i++) for (const t of targets) add(`${t.name}|batch`, (await run(t, BATCH)) / BATCHES);
      for (const [k, v] of sums) results.set(k, [...(results.get(k) ?? []), v]);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    console.log('\n| shape | single event, us a statement | 100-event batch, us a statement |');
    console.log('| --- | --- | --- |');
    for (const t of targets) {
      console.log(`| ${t.name} | ${median(results.get(`${t.name}|single`)!).toFixed(0)} | ${median(results.get(`${t.name}|batch`)!).toFixed(0)} |`);
    }
    const ratio = (a: string, b: string, size: string) => {
      const xs = results.get(`${a}|${size}`)!;
      const ys = results.get(`${b}|${size}`)!;
      const rs = xs.map((x, k) => x / ys[k]!);
      return `${median(rs).toFixed(3)} (${rs.map((r) => r.toFixed(2)).join(', ')})`;
    };
    console.log("\nmedian of the rounds' ratios:");
    for (const size of ['single', 'batch']) {
      console.log(`  the lookup (stamped / given, Stripe off), ${size}: ${ratio('stamped at receipt, Stripe off', 'occurred_at given, Stripe off', size)}`);
      console.log(`  the outbox (Stripe on / off, given), ${size}: ${ratio('occurred_at given, Stripe on', 'occurred_at given, Stripe off', size)}`);
    }
  } finally {
    for (const c of clients) await c.end().catch(() => undefined);
    await db.destroy();
    await database.drop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
