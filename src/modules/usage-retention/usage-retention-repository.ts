import type { Knex } from 'knex';
import type pg from 'pg';
import QueryStream from 'pg-query-stream';
import type { UsageArchiveRow, UsageArchiveUpdate } from '../../db/tables';
import { trimDecimal } from '../usage/quantity';
import { lockMonthsShared, monthEventsSql } from '../usage-partitions/packing';
import { ARCHIVE_COLUMNS_SQL, RESTORE_SQL, type ArchiveTotal, type ArchivedEvent } from './archive-files';

/** Why an old month is kept (the gauge's `reason`). */
export type RetainReason = 'unforwarded' | 'open_period' | 'no_archive_dir' | 'archive_failed' | 'restored';

export interface UsageArchive {
  month: string;
  partition: string;
  rows: number | null;
  bytes: number | null;
  sha256: string | null;
  file: string | null;
  archivedAt: Date | null;
  verifiedAt: Date | null;
  droppingAt: Date | null;
  droppedAt: Date | null;
  restoredAt: Date | null;
  keepUntil: Date | null;
}

const toArchive = (r: UsageArchiveRow): UsageArchive => ({
  month: r.month.slice(0, 7),
  partition: r.partition,
  rows: r.rows === null ? null : Number(r.rows),
  bytes: r.bytes === null ? null : Number(r.bytes),
  sha256: r.sha256,
  file: r.file,
  archivedAt: r.archived_at,
  verifiedAt: r.verified_at,
  droppingAt: r.dropping_at,
  droppedAt: r.dropped_at,
  restoredAt: r.restored_at,
  keepUntil: r.keep_until,
});

/** A month's partition: 'usage_events_2024_01' -> '2024-01'; null for any other name (the default partition). */
export function monthOfPartition(name: string): string | null {
  const m = /^usage_events_(\d{4})_(\d{2})$/.exec(name);
  return m ? `${m[1]}-${m[2]}` : null;
}

/** '2024-01' -> ['2024-01-01', '2024-02-01']. */
export function monthBounds(month: string): [string, string] {
  const [y, m] = month.split('-').map(Number) as [number, number];
  return [`${month}-01`, new Date(Date.UTC(y, m, 1)).toISOString().slice(0, 10)];
}

/** A month table's name, quoted, for the one statement pg runs without knex: only names of that shape pass. */
function monthTable(table: string): string {
  if (monthOfPartition(table) === null) throw new Error(`not a month of usage_events: ${table}`);
  return `"${table}"`;
}

/** A month table's first day: 'usage_events_2024_01' -> '2024-01-01'. */
const monthStart = (table: string) => `${monthOfPartition(table)!}-01`;

/** knex's pool, for the two uses that need a connection of their own (a cursor, a session lock). */
const pooled = (db: Knex) => db.client as { acquireConnection(): Promise<pg.PoolClient>; releaseConnection(conn: pg.PoolClient): Promise<void> };

const isLockTimeout = (err: unknown) => (err as { code?: string }).code === '55P03';

export function createUsageRetentionRepository() {
  return {
    /** The partitions of usage_events, and whether a DETACH CONCURRENTLY of each was left unfinished. */
    async partitions(db: Knex): Promise<{ name: string; detachPending: boolean }[]> {
      const { rows } = await db.raw<{ rows: { name: string; pending: boolean }[] }>(
        `select c.relname as name, i.inhdetachpending as pending
           from pg_inherits i join pg_class c on c.oid = i.inhrelid
          where i.inhparent = 'usage_events'::regclass order by c.relname`,
      );
      return rows.map((r) => ({ name: r.name, detachPending: r.pending }));
    },

    /** Month tables (usage_events_YYYY_MM) that exist but are no partition: detached and not yet dropped. */
    async detachedTables(db: Knex): Promise<string[]> {
      const { rows } = await db.raw<{ rows: { name: string }[] }>(
        `select c.relname as name from pg_class c
          where c.relkind = 'r' and c.relname ~ '^usage_events_[0-9]{4}_[0-9]{2}$' and pg_table_is_visible(c.oid)
            and not exists (select 1 from pg_inherits i where i.inhrelid = c.oid)
          order by c.relname`,
      );
      return rows.map((r) => r.name);
    },

    async tableExists(db: Knex, table: string): Promise<{ exists: boolean; attached: boolean }> {
      const { rows } = await db.raw<{ rows: { attached: boolean }[] }>(
        `select exists (select 1 from pg_inherits i where i.inhrelid = c.oid and i.inhparent = 'usage_events'::regclass) as attached
           from pg_class c where c.relname = ? and c.relkind = 'r' and pg_table_is_visible(c.oid)`,
        [table],
      );
      return { exists: rows.length > 0, attached: rows[0]?.attached ?? false };
    },

    /**
     * Whether the month may go, and if not why: the one place the rule is written.
     * - unforwarded: with Stripe on, an event of it still pending or failed (its usage_outbox row), or a true-up of late usage in
     *   that month not yet billed (state other than sent or local);
     * - open_period: a subscription not canceled whose current period overlaps the month, or a draft or
     *   open invoice whose period overlaps it (a period with an unknown start or end touches nothing).
     */
    async eligibility(db: Knex, _table: string, month: string, stripeEnabled: boolean): Promise<RetainReason | null> {
      const [from, to] = monthBounds(month);
      const { rows } = await db.raw<{ rows: { unforwarded: boolean; open_period: boolean }[] }>(
        `select (? and exists (select 1 from usage_outbox where occurred_month = ?::date and state in ('pending', 'failed')))
                 or exists (select 1 from usage_true_ups where state not in ('sent', 'local') and occurred_from < ?::date and occurred_to >= ?::date)
                  as unforwarded,
                exists (select 1 from subscriptions where status not in ('canceled', 'incomplete_expired')
                          and current_period_start < ?::date and current_period_end > ?::date)
                 or exists (select 1 from invoices where status in ('draft', 'open') and period_start < ?::date and period_end > ?::date)
                  as open_period`,
        [stripeEnabled, from, to, from, to, from, to, from],
      );
      if (rows[0]!.unforwarded) return 'unforwarded';
      if (rows[0]!.open_period) return 'open_period';
      return null;
    },

    /** The table's rows and its totals per (customer, metric), as the manifest holds them. */
    async tableTotals(db: Knex, table: string): Promise<{ rows: number; totals: ArchiveTotal[] }> {
      const { rows } = await db.raw<{ rows: { customer_id: string; metric: string; quantity: string; events: string }[] }>(
        `select customer_id::text as customer_id, metric, sum(quantity)::text as quantity, count(*)::text as events
           from (${monthEventsSql(monthTable(table), '?')}) e group by customer_id, metric order by customer_id::text, metric`,
        [monthStart(table), monthStart(table)],
      );
      const totals = rows.map((r) => ({ customer_id: r.customer_id, metric: r.metric, quantity: trimDecimal(r.quantity), events: Number(r.events) }));
      return { rows: totals.reduce((n, t) => n + t.events, 0), totals };
    },

    /** The table's events through a server-side cursor, a batch at a time. */
    async *events(db: Knex, table: string): AsyncGenerator<ArchivedEvent> {
      const conn = await pooled(db).acquireConnection();
      try {
        const sql = `select ${ARCHIVE_COLUMNS_SQL} from (${monthEventsSql(monthTable(table), '$1')}) e order by customer_id, occurred_at, id`;
        const stream = conn.query(new QueryStream(sql, [monthStart(table)], { batchSize: 1000 }));
        for await (const row of stream) yield row as ArchivedEvent;
      } finally {
        await pooled(db).releaseConnection(conn);
      }
    },

    /** A batch of archived events back in usage_events (in the caller's transaction); how many were not there. */
    async insertEvents(trx: Knex, events: readonly ArchivedEvent[]): Promise<number> {
      await lockMonthsShared(trx, [...new Set(events.map((e) => `${e.occurred_at.slice(0, 7)}-01`))]);
      const r = await trx.raw<{ rowCount: number }>(RESTORE_SQL, [JSON.stringify(events)]);
      return r.rowCount;
    },

    /**
     * Takes the partition out of usage_events. DETACH ... CONCURRENTLY (SHARE UPDATE EXCLUSIVE on the
     * parent, writes go on) is refused by PostgreSQL while the table has a default partition, and
     * usage_events has one: then a plain DETACH, which holds ACCESS EXCLUSIVE on the parent for the
     * few milliseconds of a catalog change, waiting at most `lockTimeoutMs` for it (so a long query
     * never queues every write behind the detach) and tried again on a timeout.
     */
    async detach(db: Knex, table: string, lockTimeoutMs: number, attempts = 50): Promise<void> {
      const { rows } = await db.raw<{ rows: { has_default: boolean }[] }>(
        `select partdefid <> 0 as has_default from pg_partitioned_table where partrelid = 'usage_events'::regclass`,
      );
      if (!rows[0]!.has_default) {
        await db.raw('alter table usage_events detach partition ?? concurrently', [table]);
        return;
      }
      for (let attempt = 1; ; attempt++) {
        try {
          await db.transaction(async (trx) => {
            await trx.raw(`select set_config('lock_timeout', ?, true)`, [`${lockTimeoutMs}ms`]);
            await trx.raw('alter table usage_events detach partition ??', [table]);
          });
          return;
        } catch (err) {
          if (!isLockTimeout(err) || attempt >= attempts) throw err;
          await new Promise((r) => setTimeout(r, Math.min(100 * attempt, 2_000)));
        }
      }
    },

    /** Finishes a DETACH ... CONCURRENTLY that was interrupted (the partition is left "detach pending"). */
    async finalizeDetach(db: Knex, table: string): Promise<void> {
      await db.raw('alter table usage_events detach partition ?? finalize', [table]);
    },

    async attach(db: Knex, table: string, month: string): Promise<void> {
      const [from, to] = monthBounds(month);
      await db.raw(`alter table usage_events attach partition ?? for values from ('${from}') to ('${to}')`, [table]);
    },

    async dropTable(db: Knex, table: string): Promise<void> {
      await db.raw('drop table if exists ??', [table]);
      // The month's packed events go with it (the archive holds both).
      await db.raw(`delete from usage_event_packs where day >= ?::date and day < (?::date + interval '1 month')::date`, [monthStart(table), monthStart(table)]);
    },

    /**
     * The month's partition, created when missing. (The shared partition maintenance,
     * src/modules/usage-partitions, takes this over once it is in.)
     */
    async ensureMonthPartition(db: Knex, month: string): Promise<void> {
      const [from, to] = monthBounds(month);
      const table = `usage_events_${month.replace('-', '_')}`;
      await db.raw(`create table if not exists ?? partition of usage_events for values from ('${from}') to ('${to}')`, [table]);
    },

    /**
     * Runs `fn` only if no other instance holds the retention lock (a session lock on a connection of
     * its own, so a killed process lets it go at once); null when another holds it.
     */
    async withLock<T>(db: Knex, fn: () => Promise<T>, waitMs = 0): Promise<T | null> {
      const conn = await pooled(db).acquireConnection();
      try {
        let ok: boolean;
        if (waitMs > 0) {
          // A restore waits its turn (lock_timeout bounds the wait for an advisory lock too).
          await conn.query(`select set_config('lock_timeout', $1, false)`, [`${waitMs}ms`]);
          ok = await conn.query(`select pg_advisory_lock(hashtext('usage-retention'), 0)`).then(
            () => true,
            (err: { code?: string }) => {
              if (err.code === '55P03') return false;
              throw err;
            },
          );
          await conn.query(`select set_config('lock_timeout', '0', false)`);
        } else {
          ok = (await conn.query<{ ok: boolean }>(`select pg_try_advisory_lock(hashtext('usage-retention'), 0) as ok`)).rows[0]!.ok;
        }
        if (!ok) return null;
        try {
          return await fn();
        } finally {
          await conn.query(`select pg_advisory_unlock(hashtext('usage-retention'), 0)`);
        }
      } finally {
        await pooled(db).releaseConnection(conn);
      }
    },

    async get(db: Knex, month: string): Promise<UsageArchive | null> {
      const row = await db('usage_archives')
        .where({ month: `${month}-01` })
        .first();
      return row ? toArchive(row) : null;
    },

    async list(db: Knex): Promise<UsageArchive[]> {
      return (await db('usage_archives').orderBy('month')).map(toArchive);
    },

    /** Creates the month's row or updates it. */
    async save(db: Knex, month: string, partition: string, fields: UsageArchiveUpdate): Promise<void> {
      await db('usage_archives')
        .insert({
          month: `${month}-01`,
          partition,
          rows: null,
          bytes: null,
          sha256: null,
          file: null,
          archived_at: null,
          verified_at: null,
          dropping_at: null,
          dropped_at: null,
          restored_at: null,
          keep_until: null,
          ...fields,
        })
        .onConflict('month')
        .merge({ partition, ...fields });
    },
  };
}

export type UsageRetentionRepository = ReturnType<typeof createUsageRetentionRepository>;
