import type { Knex } from 'knex';
import { MAX_AGE_MS } from '../usage/usage-window';
import { addMonths, monthOf, type Month } from './partition-months';

/**
 * Settled months, packed (docs/SCALING.md). A month settles once POST /api/usage can take none of its
 * events any more (35 days after its end) and a day more for clocks that disagree. The partition
 * maintenance then moves its events out of its partition into usage_event_packs: one row per
 * customer, UTC day and metric, the events' fields as arrays in one order.
 *
 * Idempotency holds across the two forms through one lock per month:
 * - the packing takes it exclusively (pg_advisory_xact_lock) in each of its transactions (a day each);
 * - a write of an event older than LATE_WRITE_AGE_MS (a usage bundle's late usage; nothing online
 *   is that old) takes its month's lock shared before its statement, and that statement looks the
 *   keys up in the month's packs as well as in its partition (usage-repository.ts, `packed`).
 * LATE_WRITE_AGE_MS is a day less than MAX_AGE_MS and a month settles a day after MAX_AGE_MS: a
 * writer whose clock is up to two days off the packer's still takes the lock for every month the
 * packer may touch. A write that took the lock runs after a packing that held it committed (its
 * statement's snapshot is taken after the lock), and a packing runs after every such write.
 * Rows written into a packed month afterwards stay rows beside the packs until the next run packs
 * them too.
 */

const DAY_MS = 24 * 3600 * 1000;

const q = (ident: string) => `"${ident.replace(/"/g, '""')}"`;

/** Events older than this take their month's pack lock and look in its packs (see above). */
export const LATE_WRITE_AGE_MS = MAX_AGE_MS - DAY_MS;

/** The first month not settled at `now`: every month before it may be packed. */
export const firstUnsettledMonth = (now: Date): Month => monthOf(new Date(now.getTime() - MAX_AGE_MS - DAY_MS));

/** Whether an event at `occurredMs` is written under its month's pack lock, at `nowMs`. */
export const writesUnderPackLock = (occurredMs: number, nowMs: number) => occurredMs < nowMs - LATE_WRITE_AGE_MS;

/** A month's lock key: the second half of (hashtext('usage-pack'), YYYYMM). */
const monthKey = (month: Month) => Number(month.slice(0, 4)) * 100 + Number(month.slice(5, 7));

/** Writers: the months' locks, shared, in month order, for the rest of the caller's transaction. */
export async function lockMonthsShared(trx: Knex, months: readonly Month[]): Promise<void> {
  const keys = [...new Set(months.map(monthKey))].sort((a, b) => a - b);
  await trx.raw(`select pg_advisory_xact_lock_shared(hashtext('usage-pack'), k) from unnest(?::int[]) as k`, [`{${keys.join(',')}}`]);
}

/** The packing: the month's lock, exclusive, for the rest of the caller's transaction. */
async function lockMonthExclusive(trx: Knex, month: Month): Promise<void> {
  await trx.raw(`select pg_advisory_xact_lock(hashtext('usage-pack'), ?::int)`, [monthKey(month)]);
}

/**
 * The events of pack rows `p`, one row each (a lateral join): u.id, u.quantity, u.idempotency_key,
 * and through the expressions below their time, fingerprint and state. The one place the packed
 * layout is read.
 */
export const unnestPack = (p: string) =>
  `cross join lateral unnest(${p}.ids, ${p}.us, ${p}.quantities, ${p}.keys) with ordinality as u(id, us, quantity, idempotency_key, n)`;
/** The keys alone (a restore's lookup: the other arrays are not decompressed). */
export const unnestPackKeys = (p: string) => `cross join lateral unnest(${p}.keys) as u(idempotency_key)`;
/** The times and quantities alone (a total reads no more: the other arrays are not even decompressed). */
export const unnestPackQuantities = (p: string) => `cross join lateral unnest(${p}.us, ${p}.quantities) as u(us, quantity)`;
export const packedOccurredAt = (p: string) => `((${p}.day::timestamp + u.us * interval '1 microsecond') at time zone 'UTC')`;
export const packedRequestHash = (p: string) => `substring(${p}.hashes from (u.n::int - 1) * 16 + 1 for 16)`;
export const packedState = (p: string) => `substring(${p}.states from u.n::int for 1)`;

/**
 * The events of `table` (a month's partition, or its table once detached; quoted) and of the month's
 * packs, as usage_events' columns (id, customer_id, metric, quantity, occurred_at, idempotency_key,
 * request_hash, state). `month` is the placeholder of the month's first day ('YYYY-MM-01'): `?`
 * (knex) is bound twice, `$1` (pg) once.
 */
export const monthEventsSql = (table: string, month: '?' | '$1') => `
  select id, customer_id, metric, quantity, occurred_at, idempotency_key, request_hash, state from ${table}
  union all
  select u.id, p.customer_id, p.metric, u.quantity, ${packedOccurredAt('p')}, u.idempotency_key, ${packedRequestHash('p')}, ${packedState('p')}::char(1)
    from usage_event_packs p ${unnestPack('p')}
   where p.day >= ${month}::date and p.day < (${month}::date + interval '1 month')::date`;

export interface PackResult {
  /** Events moved into packs by this run. */
  events: number;
  /** The partition's heap and indexes before and after (after its VACUUM and REINDEX). */
  bytesBefore: number;
  bytesAfter: number;
}

/**
 * Why a settled month with rows is not packed (further) this run: an event of it still waits for
 * Stripe, or its lock stayed taken past lock_timeout.
 */
export type PackBlocked = 'unforwarded' | 'busy';

type On = (sql: string, bindings?: readonly Knex.RawBinding[]) => Knex.Raw;

/**
 * Packs one settled month: a day a transaction, each under the month's lock, every row of the day
 * moves out of its partition into usage_event_packs (appended to a day's pack when one is there
 * already); then the partition's heap is vacuumed (its empty pages given back) and its indexes
 * rebuilt concurrently (so they shrink to nothing). Not while an event of the month still waits for
 * Stripe (an outbox row pending or failed: the forwarder updates that event's row when it gives up).
 */
export async function packMonth(
  on: On,
  inTransaction: <T>(work: (trx: Knex.Transaction) => Promise<T>) => Promise<T>,
  month: Month,
  table: string,
): Promise<PackResult | PackBlocked> {
  const size = async () => Number(((await on(`select pg_total_relation_size(?::regclass)::text as n`, [table])) as { rows: { n: string }[] }).rows[0]!.n);
  const bytesBefore = await size();
  let moved = 0;
  let blocked: PackBlocked | null = null;
  // A day a transaction, so none grows with the month (50 s for a month of 7.7 million events in one
  // went to about 2 s a day); each day's move is whole or not at all.
  const next = addMonths(month, 1);
  for (let day = month; day < next; day = nextDay(day)) {
    try {
      const n = await inTransaction(async (trx) => {
        await lockMonthExclusive(trx, month);
        const waiting = await trx.raw<{ rows: { n: boolean }[] }>(
          `select exists (select 1 from usage_outbox where occurred_month = ?::date and state in ('pending', 'failed')) as n`,
          [month],
        );
        if (waiting.rows[0]!.n) return null;
        const res = await trx.raw<{ rows: { events: string }[] }>(PACK_DAY_SQL(q(table)), [day, day]);
        return Number(res.rows[0]!.events);
      });
      if (n === null) {
        blocked = 'unforwarded';
        break;
      }
      moved += n;
    } catch (err) {
      // The month's lock stayed taken past lock_timeout (a late write held up): the next round goes on.
      if ((err as { code?: string }).code !== '55P03') throw err;
      blocked = 'busy';
      break;
    }
  }
  if (moved === 0 && blocked) return blocked;
  await on(`vacuum ${q(table)}`);
  await on(`reindex table concurrently ${q(table)}`);
  const bytesAfter = await size();
  await on(
    `insert into usage_packed_months (month, events, bytes_before, bytes_after) values (?::date, ?, ?, ?)
     on conflict (month) do update set events = usage_packed_months.events + excluded.events, bytes_after = excluded.bytes_after, packed_at = now()`,
    [month, moved, bytesBefore, bytesAfter],
  );
  return { events: moved, bytesBefore, bytesAfter };
}

/** 'YYYY-MM-DD' -> the next day. */
const nextDay = (day: string) => new Date(Date.parse(`${day}T00:00:00Z`) + DAY_MS).toISOString().slice(0, 10);

/**
 * One day's rows of a partition ($1, $2: the day) into its packs: deleted and returned (the BRIN
 * index on occurred_at finds the day), grouped by customer and metric, each array in (occurred_at, id)
 * order, appended to a pack already there. Answers how many events moved.
 */
const PACK_DAY_SQL = (table: string) => `
  with moved as (
    delete from ${table} where occurred_at >= ?::date::timestamp at time zone 'UTC' and occurred_at < (?::date + 1)::timestamp at time zone 'UTC'
    returning customer_id, occurred_at, id, metric, quantity, idempotency_key, request_hash, state
  ), ordered as (
    select m.*, (m.occurred_at at time zone 'UTC')::date as day from moved m
  ), packed as (
    insert into usage_event_packs as p (customer_id, day, metric, events, local, routed, ids, us, quantities, keys, hashes, states)
    select customer_id, day, metric, count(*), count(*) filter (where state = 'l'), count(*) filter (where state = 's'),
           array_agg(id order by occurred_at, id),
           array_agg((extract(epoch from (occurred_at at time zone 'UTC') - day::timestamp) * 1000000)::bigint order by occurred_at, id),
           array_agg(quantity order by occurred_at, id),
           array_agg(idempotency_key order by occurred_at, id),
           string_agg(request_hash, ''::bytea order by occurred_at, id),
           string_agg(state::text, '' order by occurred_at, id)
      from ordered group by customer_id, day, metric
    on conflict on constraint usage_event_packs_pkey do update
      set events = p.events + excluded.events, local = p.local + excluded.local, routed = p.routed + excluded.routed,
          ids = p.ids || excluded.ids, us = p.us || excluded.us, quantities = p.quantities || excluded.quantities,
          keys = p.keys || excluded.keys, hashes = p.hashes || excluded.hashes, states = p.states || excluded.states
  )
  select count(*)::text as events from moved`;

/** The partitions among `partitions` that still hold a row. */
export async function monthsWithRows(on: On, partitions: readonly { month: Month; table: string }[]): Promise<{ month: Month; table: string }[]> {
  const out: { month: Month; table: string }[] = [];
  for (const p of partitions) {
    const { rows } = (await on(`select exists (select 1 from ${q(p.table)}) as any`)) as { rows: { any: boolean }[] };
    if (rows[0]!.any) out.push(p);
  }
  return out;
}
