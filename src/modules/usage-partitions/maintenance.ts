import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { systemContext } from '../../lib/request-context';
import type { AuditService } from '../audit/audit-service';
import { MAX_AGE_MS } from '../usage/usage-schemas';
import { firstUnsettledMonth, monthsWithRows, packMonth } from './packing';
import { addMonths, monthOf, monthsAhead, partitionName, readPartitions, type Month } from './partition-months';

/**
 * Partition maintenance of usage_events (partitioned by occurred_month, docs/USAGE.md#partitions):
 * a partition for every month from the current UTC month to `ahead` months after it, and for every
 * month with rows in the default partition (strays), which move into it, so the default stays empty.
 *
 * Why not CREATE TABLE ... PARTITION OF: in PostgreSQL 15 it takes an ACCESS EXCLUSIVE lock on
 * usage_events, and every usage write waits behind it (and behind whatever it waits for). Instead,
 * per month:
 * 1. prepare (its own transaction): a standalone table LIKE usage_events with its CHECK constraints,
 *    a CHECK of the month's bounds (so ATTACH skips its validation scan) and the partitioned indexes'
 *    twins (ATTACH adopts them rather than building them). Not the foreign key: a partition's own
 *    foreign key, adopted on ATTACH, takes ACCESS EXCLUSIVE on customers (every key check waits);
 *    the one ATTACH clones takes only SHARE ROW EXCLUSIVE there (customer writes wait, reads do not)
 *    and validates the new partition's rows, which are only the strays.
 * 2. attach (one short transaction): SHARE UPDATE EXCLUSIVE on usage_events (writes go on), ACCESS
 *    EXCLUSIVE on the default partition (ATTACH checks it holds no row of the new range; usage writes
 *    whose plan reads every partition wait for this transaction), the strays moved, ATTACH, the bounds
 *    CHECK dropped, the audit row.
 * Every lock is asked with lock_timeout, so a long query in the way costs a failed round (tried again
 * next round), not a queue of writes behind the waiting maintenance.
 * One instance at a time: a session advisory lock; another instance's run returns at once.
 */

export interface PartitionMetrics {
  runs: { inc(labels: { outcome: 'done' | 'skipped' | 'failed' }): void };
  duration: { observe(seconds: number): void };
  created: { inc(n?: number): void };
}

export interface MaintenanceOptions {
  now: Date;
  /** Months after the current one to have partitions for (USAGE_PARTITIONS_AHEAD). */
  ahead: number;
  /** Each partition made is audited (actor system). */
  audit: Pick<AuditService, 'record'>;
  logger?: Logger;
  metrics?: PartitionMetrics;
  /** lock_timeout of every statement that locks (default 5 s). */
  lockTimeoutMs?: number;
  /**
   * Pack settled months (USAGE_PACK_SETTLED, packing.ts): at most one a run, the oldest first. Off:
   * a settled month's indexes are rebuilt instead (compactSettled).
   */
  pack?: boolean;
  /** Called inside the attach transaction, after ATTACH, before commit (tests observe the locks there). */
  beforeCommit?: (month: Month) => Promise<void>;
}

export interface MaintenanceResult {
  /** The months created, 'YYYY-MM-01', ascending. */
  created: Month[];
  /** Rows moved out of the default partition into the new partitions. */
  movedFromDefault: number;
  /** The settled months whose indexes were rebuilt by this run ('YYYY-MM-01'; at most one a run). */
  compacted: Month[];
  /** The settled month packed by this run (at most one), with its events moved and its partition's bytes. */
  packed: { month: Month; events: number; bytesBefore: number; bytesAfter: number }[];
  /** Settled months with rows left unpacked because an event of theirs still waits for Stripe. */
  packWaiting: Month[];
  /** Rows left in the default partition afterwards (0 unless a stray came in meanwhile). */
  defaultRows: number;
  /** Partitions of usage_events afterwards, the default not counted. */
  partitions: number;
  ms: number;
  /** Another instance was maintaining: nothing was done. */
  skipped: boolean;
}

const DEFAULT_PARTITION = 'usage_events_default';

const LOCK_KEY = `hashtext('usage-partitions'), 0`;

const q = (ident: string) => `"${ident.replace(/"/g, '""')}"`;
/** Index and constraint names: the partition's name with the parent's suffix, within PostgreSQL's 63 bytes. */
const childName = (table: string, parentName: string) => `${table}_${parentName.replace(/^usage_events_/, '')}`.slice(0, 63);
const boundsName = (table: string) => `${table}_bounds`;

export async function maintainUsagePartitions(db: Knex, opts: MaintenanceOptions): Promise<MaintenanceResult> {
  const started = process.hrtime.bigint();
  const elapsedMs = () => Number(process.hrtime.bigint() - started) / 1e6;
  const lockTimeoutMs = opts.lockTimeoutMs ?? 5000;
  // A session advisory lock belongs to one connection: every statement of the run goes through it.
  const conn: unknown = await (db.client as { acquireConnection(): Promise<unknown> }).acquireConnection();
  const on = (sql: string, bindings: readonly Knex.RawBinding[] = []) => db.raw(sql, bindings).connection(conn);
  const inTransaction = <T>(work: (trx: Knex.Transaction) => Promise<T>) =>
    db.transaction(
      async (trx) => {
        await trx.raw(`set local lock_timeout = ${Math.max(1, Math.floor(lockTimeoutMs))}`);
        return work(trx);
      },
      { connection: conn } as Knex.TransactionConfig,
    );
  let locked = false;
  try {
    const lock = (await on(`select pg_try_advisory_lock(${LOCK_KEY}) as ok`)) as { rows: { ok: boolean }[] };
    locked = lock.rows[0]!.ok;
    if (!locked) {
      const state = await readPartitions(db);
      opts.metrics?.runs.inc({ outcome: 'skipped' });
      return {
        created: [],
        compacted: [],
        packed: [],
        packWaiting: [],
        movedFromDefault: 0,
        defaultRows: await countDefault(db),
        partitions: state.partitions,
        ms: elapsedMs(),
        skipped: true,
      };
    }

    const state = await readPartitions(db);
    const wanted = new Set<Month>();
    const current = monthOf(opts.now);
    // The months POST /api/usage still takes (35 days back), the current one, and `ahead` after it.
    const oldestOnline = monthOf(new Date(opts.now.getTime() - MAX_AGE_MS));
    for (let m = oldestOnline; m < current; m = addMonths(m, 1)) wanted.add(m);
    for (let i = 0; i <= opts.ahead; i++) wanted.add(addMonths(current, i));
    if (state.hasDefault) {
      const strays = (await on(`select distinct to_char(occurred_month, 'YYYY-MM-DD') as month from ${DEFAULT_PARTITION}`)) as { rows: { month: string }[] };
      for (const r of strays.rows) wanted.add(r.month);
    }
    const have = new Set(state.months);
    const missing = [...wanted].filter((m) => !have.has(m)).sort();

    const created: Month[] = [];
    let moved = 0;
    if (missing.length) {
      const parentIndexes = await readParentIndexes(db);
      for (const month of missing) {
        const table = partitionName(month);
        const next = addMonths(month, 1);
        await inTransaction((trx) => prepare(trx, table, month, next, parentIndexes));
        try {
          moved += await inTransaction(async (trx) => {
            await trx.raw('lock table usage_events in share update exclusive mode');
            let n = 0;
            if (state.hasDefault) {
              await trx.raw(`lock table ${DEFAULT_PARTITION} in access exclusive mode`);
              // Same columns in the same order (LIKE), so the rows move as they are.
              const res = await trx.raw<{ rowCount: number }>(
                `with strays as (delete from ${DEFAULT_PARTITION} where occurred_month >= ?::date and occurred_month < ?::date returning *)
                 insert into ${q(table)} select * from strays`,
                [month, next],
              );
              n = res.rowCount ?? 0;
            }
            await trx.raw(`alter table usage_events attach partition ${q(table)} for values from ('${month}') to ('${next}')`);
            await trx.raw(`alter table ${q(table)} drop constraint ${q(boundsName(table))}`);
            await opts.audit.record(trx, systemContext(), {
              action: 'usage.partition_create',
              outcome: 'success',
              targetType: 'usage_partition',
              targetId: table,
              details: { month: month.slice(0, 7), moved: n },
            });
            await opts.beforeCommit?.(month);
            return n;
          });
        } catch (err) {
          // The prepared table is not in use by anyone: leave nothing half done behind (the next round prepares it again).
          await on(`drop table if exists ${q(table)}`).catch(() => undefined);
          throw err;
        }
        created.push(month);
        opts.metrics?.created.inc();
        opts.logger?.info({ month: month.slice(0, 7), partition: table }, 'usage partition created');
      }
    }

    const { packed, packWaiting } = opts.pack ? await packSettled(db, on, inTransaction, opts) : { packed: [], packWaiting: [] };
    // Packing rebuilds a packed partition's indexes itself; compaction is what a round does without it.
    const compacted = opts.pack ? [] : await compactSettled(on, opts);

    const after = await readPartitions(db);
    const result: MaintenanceResult = {
      created,
      compacted,
      packed,
      packWaiting,
      movedFromDefault: moved,
      defaultRows: await countDefault(db),
      partitions: after.partitions,
      ms: elapsedMs(),
      skipped: false,
    };
    opts.metrics?.runs.inc({ outcome: 'done' });
    opts.metrics?.duration.observe(result.ms / 1000);
    opts.logger?.debug({ ...result, monthsAhead: monthsAhead(after.months, opts.now) }, 'usage partition maintenance done');
    return result;
  } catch (err) {
    opts.metrics?.runs.inc({ outcome: 'failed' });
    opts.metrics?.duration.observe(elapsedMs() / 1000);
    throw err;
  } finally {
    try {
      if (locked) await on(`select pg_advisory_unlock(${LOCK_KEY})`);
    } finally {
      await (db.client as { releaseConnection(c: unknown): Promise<void> }).releaseConnection(conn);
    }
  }
}

/**
 * The oldest settled month whose partition holds rows and whose events all reached Stripe (or were
 * given up) is packed (packing.ts) and audited; those still waiting are named.
 */
async function packSettled(
  db: Knex,
  on: (sql: string, bindings?: readonly Knex.RawBinding[]) => Knex.Raw,
  inTransaction: <T>(work: (trx: Knex.Transaction) => Promise<T>) => Promise<T>,
  opts: MaintenanceOptions,
): Promise<Pick<MaintenanceResult, 'packed' | 'packWaiting'>> {
  const candidates = await monthsWithRows(on, await settledPartitions(on, firstUnsettledMonth(opts.now)));
  const packWaiting: Month[] = [];
  for (const { month, table } of candidates) {
    const started = Date.now();
    const r = await packMonth(on, inTransaction, month, table);
    if (r === 'unforwarded') {
      packWaiting.push(month);
      continue;
    }
    if (r === 'busy') {
      opts.logger?.info({ month: month.slice(0, 7) }, 'usage month not packed: its lock stayed taken by a late write; the next round tries again');
      break;
    }
    await opts.audit.record(db, systemContext(), {
      action: 'usage.month_pack',
      outcome: 'success',
      targetType: 'usage_month',
      targetId: month.slice(0, 7),
      details: { partition: table, events: r.events, bytes_before: r.bytesBefore, bytes_after: r.bytesAfter },
    });
    opts.logger?.info({ month: month.slice(0, 7), partition: table, ...r, ms: Date.now() - started }, 'usage month packed');
    return { packed: [{ month, ...r }], packWaiting };
  }
  if (packWaiting.length)
    opts.logger?.info({ months: packWaiting.map((m) => m.slice(0, 7)) }, 'settled usage months not packed: an event of theirs still waits for Stripe');
  return { packed: [], packWaiting };
}

/**
 * A month settles 35 days after its end: POST /api/usage takes nothing older (a usage bundle still may,
 * rarely). Its partition's B-tree indexes were filled in key order per customer, so their pages were
 * split half full and stay so (about half their size is air: docs/SCALING.md). Once settled, they are
 * rebuilt once, REINDEX TABLE CONCURRENTLY (SHARE UPDATE EXCLUSIVE: writes and reads go on), which
 * packs them to the default fill factor; usage_partition_compactions records it. One month a run, the
 * oldest first, so a run stays bounded. A rebuild cut short leaves an invalid `_ccnew` index behind:
 * it is dropped before the month is tried again.
 */
async function compactSettled(on: (sql: string, bindings?: readonly Knex.RawBinding[]) => Knex.Raw, opts: MaintenanceOptions): Promise<Month[]> {
  const unsettled = firstUnsettledMonth(opts.now);
  const { rows } = (await on(
    `select to_char(b.lower_bound, 'YYYY-MM-DD') as month, c.relname as partition
       from pg_inherits i join pg_class c on c.oid = i.inhrelid,
            lateral (select (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([0-9-]+)''\\)'))[1]::date as lower_bound) b
      where i.inhparent = 'usage_events'::regclass and b.lower_bound is not null and b.lower_bound < ?::date
        and not exists (select 1 from usage_partition_compactions p where p.month = b.lower_bound)
      order by b.lower_bound limit 1`,
    [unsettled],
  )) as { rows: { month: string; partition: string }[] };
  const next = rows[0];
  if (!next) return [];
  const table = next.partition;
  const invalid = (await on(
    `select ic.relname as name from pg_index x join pg_class ic on ic.oid = x.indexrelid
      where x.indrelid = ?::regclass and not x.indisvalid and ic.relname ~ '_ccnew[0-9]*$'`,
    [table],
  )) as { rows: { name: string }[] };
  for (const r of invalid.rows) await on(`drop index concurrently if exists ${q(r.name)}`);
  const size = async () => Number(((await on(`select pg_indexes_size(?::regclass)::text as n`, [table])) as { rows: { n: string }[] }).rows[0]!.n);
  const before = await size();
  const started = Date.now();
  await on(`reindex table concurrently ${q(table)}`);
  const after = await size();
  await on(`insert into usage_partition_compactions (month, partition, bytes_before, bytes_after) values (?::date, ?, ?, ?) on conflict (month) do nothing`, [
    next.month,
    table,
    before,
    after,
  ]);
  opts.logger?.info(
    { month: next.month.slice(0, 7), partition: table, bytesBefore: before, bytesAfter: after, ms: Date.now() - started },
    'usage partition indexes compacted',
  );
  return [next.month];
}

/** The partitions of months before `unsettled`, oldest first, with their names from the catalog. */
async function settledPartitions(
  on: (sql: string, bindings?: readonly Knex.RawBinding[]) => Knex.Raw,
  unsettled: Month,
): Promise<{ month: Month; table: string }[]> {
  const { rows } = (await on(
    `select to_char(b.lower_bound, 'YYYY-MM-DD') as month, c.relname as "table"
       from pg_inherits i join pg_class c on c.oid = i.inhrelid,
            lateral (select (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([0-9-]+)''\\)'))[1]::date as lower_bound) b
      where i.inhparent = 'usage_events'::regclass and b.lower_bound is not null and b.lower_bound < ?::date
      order by b.lower_bound`,
    [unsettled],
  )) as { rows: { month: string; table: string }[] };
  return rows;
}

/** Rows in the default partition: 0 when there is none (no month is then ever a stray). */
export async function countDefault(db: Knex): Promise<number> {
  const { rows } = await db.raw<{ rows: { n: number }[] }>(
    `select case when to_regclass(?) is null then 0 else (select count(*)::int from ${DEFAULT_PARTITION}) end as n`,
    [DEFAULT_PARTITION],
  );
  return rows[0]!.n;
}

interface ParentIndex {
  name: string;
  /** CREATE INDEX ... ON ONLY usage_events ... */
  indexDef: string;
  /** UNIQUE (...) / PRIMARY KEY (...) when the index backs a constraint. */
  constraintDef: string | null;
}

/** The partitioned indexes of usage_events, read from the catalog so a new one is copied too. */
async function readParentIndexes(db: Knex): Promise<ParentIndex[]> {
  const { rows } = await db.raw<{ rows: { name: string; index_def: string; constraint_def: string | null }[] }>(
    `select ic.relname as name, pg_get_indexdef(x.indexrelid) as index_def,
            (select pg_get_constraintdef(con.oid) from pg_constraint con
              where con.conindid = x.indexrelid and con.conrelid = x.indrelid and con.contype in ('u', 'p', 'x')) as constraint_def
       from pg_index x join pg_class ic on ic.oid = x.indexrelid
      where x.indrelid = 'usage_events'::regclass
      order by ic.relname`,
  );
  return rows.map((r) => ({ name: r.name, indexDef: r.index_def, constraintDef: r.constraint_def }));
}

/** Step 1: the standalone table, ready to attach without a scan or an index build. */
async function prepare(trx: Knex.Transaction, table: string, month: Month, next: Month, indexes: readonly ParentIndex[]): Promise<void> {
  const { rows } = await trx.raw<{ rows: { relkind: string; partition: boolean; bounds: boolean }[] }>(
    `select c.relkind::text as relkind, c.relispartition as partition,
            exists (select 1 from pg_constraint where conrelid = c.oid and conname = ?) as bounds
       from pg_class c where c.oid = to_regclass(?)`,
    [boundsName(table), table],
  );
  const existing = rows[0];
  if (existing) {
    // A table this maintenance prepared and did not attach (it stopped between the two steps) is made again.
    const ours = existing.relkind === 'r' && !existing.partition && existing.bounds;
    const empty = ours && (await trx.raw<{ rows: unknown[] }>(`select 1 from ${q(table)} limit 1`)).rows.length === 0;
    if (!empty) throw new Error(`${table} already exists and is not a partition of usage_events: rename or drop it`);
    await trx.raw(`drop table ${q(table)}`);
  }
  await trx.raw(`create table ${q(table)} (like usage_events including defaults including constraints)`);
  await trx.raw(`alter table ${q(table)} add constraint ${q(boundsName(table))} check (occurred_month >= date '${month}' and occurred_month < date '${next}')`);
  for (const ix of indexes) {
    const name = childName(table, ix.name);
    if (ix.constraintDef) {
      await trx.raw(`alter table ${q(table)} add constraint ${q(name)} ${ix.constraintDef}`);
    } else {
      const def = ix.indexDef.replace(
        /^CREATE (UNIQUE )?INDEX \S+ ON ONLY \S+ /,
        (_m, unique: string | undefined) => `CREATE ${unique ?? ''}INDEX ${q(name)} ON ${q(table)} `,
      );
      if (def === ix.indexDef) throw new Error(`unexpected index definition of ${ix.name}`);
      await trx.raw(def);
    }
  }
}
