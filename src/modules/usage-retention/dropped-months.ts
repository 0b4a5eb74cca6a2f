import type { Knex } from 'knex';

/**
 * The months whose raw usage events are gone, or about to go (usage_archives: dropping_at set, not
 * restored), as 'YYYY-MM'. Usage totals read those months' partial days from usage_daily instead.
 *
 * Remembered per database pool for DROPPED_MONTHS_TTL_MS, since every totals query asks. The
 * retention job records a month here and then waits longer than that before it detaches the month,
 * so no instance still reads its raw events once they start to go; in the instance that ran the job
 * the memory is dropped at once (forgetDroppedMonths).
 */
export const DROPPED_MONTHS_TTL_MS = 5_000;

const remembered = new WeakMap<object, { at: number; months: Promise<ReadonlySet<string>> }>();

/** A transaction's client inherits its pool from the knex it came from: the same key for both. */
const keyOf = (db: Knex): object => (db.client as { pool?: object }).pool ?? (db.client as object);

export function droppedMonths(db: Knex, nowMs = Date.now()): Promise<ReadonlySet<string>> {
  const key = keyOf(db);
  const hit = remembered.get(key);
  if (hit && nowMs - hit.at < DROPPED_MONTHS_TTL_MS) return hit.months;
  const months = db
    .raw<{ rows: { month: string }[] }>(`select to_char(month, 'YYYY-MM') as month from usage_archives where dropping_at is not null and restored_at is null`)
    .then(({ rows }) => new Set(rows.map((r) => r.month)) as ReadonlySet<string>);
  remembered.set(key, { at: nowMs, months });
  // A failed read is not remembered.
  months.catch(() => remembered.delete(key));
  return months;
}

export function forgetDroppedMonths(db: Knex): void {
  remembered.delete(keyOf(db));
}

/** 'YYYY-MM' of a time, in UTC. */
export const monthOf = (d: Date) => d.toISOString().slice(0, 7);
