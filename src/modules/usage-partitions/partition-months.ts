import type { Knex } from 'knex';

/** 'YYYY-MM-01' of a UTC month: the partition key's value for that month. */
export type Month = string;

const MONTH = /^(\d{4})-(\d{2})-01$/;

export function monthOf(d: Date): Month {
  return `${String(d.getUTCFullYear()).padStart(4, '0')}-${String(d.getUTCMonth() + 1).padStart(2, '0')}-01`;
}

export function addMonths(month: Month, n: number): Month {
  const m = MONTH.exec(month);
  if (!m) throw new Error(`not a month: ${month}`);
  return monthOf(new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1 + n, 1)));
}

/** usage_events_YYYY_MM, the migration's naming. */
export const partitionName = (month: Month) => `usage_events_${month.slice(0, 7).replace('-', '_')}`;

export interface PartitionState {
  /** Every month a partition of usage_events covers, ascending. */
  months: Month[];
  /** Partitions other than the default. */
  partitions: number;
  /** Whether usage_events has a default partition at all. */
  hasDefault: boolean;
}

const BOUND = /^FOR VALUES FROM \('(\d{4}-\d{2}-\d{2})'\) TO \('(\d{4}-\d{2}-\d{2})'\)$/;

/** The partitions of usage_events, read from the catalog (their bounds, not their names). */
export async function readPartitions(db: Knex): Promise<PartitionState> {
  const { rows } = await db.raw<{ rows: { bound: string }[] }>(
    `select pg_get_expr(c.relpartbound, c.oid) as bound
       from pg_inherits i join pg_class c on c.oid = i.inhrelid
      where i.inhparent = 'usage_events'::regclass`,
  );
  const months = new Set<Month>();
  let partitions = 0;
  let hasDefault = false;
  for (const { bound } of rows) {
    if (bound === 'DEFAULT') {
      hasDefault = true;
      continue;
    }
    partitions++;
    const m = BOUND.exec(bound);
    if (!m) continue;
    // A range that is not whole months (made by hand) still covers the months wholly inside it.
    for (let month = monthOf(new Date(`${m[1]}T00:00:00Z`)); month < m[2]!; month = addMonths(month, 1)) {
      if (month >= m[1]!) months.add(month);
    }
  }
  return { months: [...months].sort(), partitions, hasDefault };
}

/**
 * How many months after the current one are covered without a gap: 0 when only the current month
 * is, -1 when not even the current month is (its events would land in the default partition).
 */
export function monthsAhead(months: readonly Month[], now: Date): number {
  const have = new Set(months);
  let month = monthOf(now);
  let n = -1;
  while (have.has(month)) {
    n++;
    month = addMonths(month, 1);
  }
  return n;
}
