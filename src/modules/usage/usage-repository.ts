import type { Knex } from 'knex';
import { namedStatement, runNamed, runNamedInTransaction, type NamedStatement } from '../../db/named-statement';
import type { ForwardingState, UsageDailyRow } from '../../db/tables';
import { trimDecimal } from './quantity';
import { MAX_AGE_MS } from './usage-window';
import { droppedMonths, monthOf } from '../usage-retention/dropped-months';
import { lockMonthsShared, packedOccurredAt, packedRequestHash, unnestPack, unnestPackQuantities, writesUnderPackLock } from '../usage-partitions/packing';
import { monthOf as monthOfPartition } from '../usage-partitions/partition-months';
import {
  answerListSql,
  decodeOutcomes,
  decodeRefusal,
  decodeStored,
  refusalDetailSql,
  type RefusedEvent,
  type StoredEvent,
  type WriteOutcome,
} from './write-answer';

export type { ForwardingState, RefusedEvent, StoredEvent, WriteOutcome };

export interface UsageEvent {
  id: string;
  customerId: string;
  metric: string;
  quantity: string;
  occurredAt: Date;
  idempotencyKey: string;
  receivedAt: Date;
}

/** An event to write: what the customer sent (occurredAt absent: not given). */
export interface EventToWrite {
  customerId: string;
  metric: string;
  /** Normalised decimal string. */
  quantity: string;
  occurredAt?: Date;
  idempotencyKey: string;
}

export interface TotalsQuery {
  customerId?: string;
  metric?: string;
  from: Date;
  to: Date;
  groupBy: ('customer' | 'metric' | 'day')[];
}

export interface TotalsRow {
  customerId?: string;
  metric?: string;
  day?: string;
  quantity: string;
  events: number;
}

/**
 * Within this long of a UTC month's start, an event sent without occurred_at may be stamped in one
 * month while a retry of it, in flight at the same time, is stamped in the next: the two would meet in
 * no partition. Such writes take a lock per customer first (see lockTurn), so one runs after the other
 * committed, and within the window the write looks in the next month too: whichever runs second finds
 * the first, in either month. Ten minutes is far longer than a write stays in flight (milliseconds;
 * nothing here bounds it, so a write held up longer than that at the very turn is the one case left);
 * outside it, a retry finds the first copy committed.
 */
export const MONTH_TURN_WINDOW_MS = 10 * 60 * 1000;

/**
 * The one write of usage events, for single events (a group commit of many customers' events)
 * and batches alike. In one statement:
 * - the request fingerprint of each event (the first 16 bytes of SHA-256 over
 *   "metric\nquantity\noccurred_ms", occurred_ms empty when not given), its time (the one given, or
 *   `$6`, the receipt) and its id (UUIDv7);
 * - usage_events is partitioned by month of occurrence (docs/decisions/usage-partitions.md), and a
 *   key is unique per customer and month: a retry carries the same occurred_at and meets its first
 *   copy in the same partition. An event sent without occurred_at is stamped with its receipt, so its
 *   retry may fall in the next month: for those alone the other months of the last 35 days (and,
 *   at a month's turn, the next month: see lockTurn) are looked up first (`earlier`), and a key found
 *   there is that event (a replay or a conflict), never a second. Those months are written into the
 *   text as constants (lookbackMonths), so the plan holds their partitions alone, pruned when it is
 *   made rather than at every run; a write whose events all carry occurred_at runs the text without
 *   the lookup (WriteShape). Each text is its own named statement (writeStatement);
 * - the insert, one row per (customer, key), in key order so concurrent writers lock in one order;
 * - a key already stored in the event's month is not inserted but locked and read back by ON CONFLICT
 *   DO UPDATE (a no-op update), which sees a row committed after this statement's snapshot, so a
 *   concurrent writer of the same key is always found and there is no second lookup;
 * - the daily totals of exactly the inserted rows;
 * - per event given: replay or conflict, by comparing fingerprints. This is the only place the
 *   idempotency rule is written.
 * Arrays through unnest keep the SQL text constant whatever the number of events. It runs as a
 * named statement (src/db/named-statement.ts); its answer is encoded and read in write-answer.ts.
 */
export function writeSql({ lookIn, forward, packed = false }: WriteShape): string {
  const lookup = lookIn.length > 0;
  return `
with given as (
  select t.ord, t.customer_id, t.metric, t.quantity, t.occurred_ms, t.idempotency_key,
         timestamptz 'epoch' + coalesce(t.occurred_ms, $6::bigint) * interval '1 millisecond' as occurred_at,
         substring(sha256(convert_to(t.metric || E'\\n' || t.quantity || E'\\n' || coalesce(t.occurred_ms::text, ''), 'UTF8')) from 1 for 16) as request_hash
    from unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::text[]) with ordinality
      as t(customer_id, metric, quantity, occurred_ms, idempotency_key, ord)
), input as (
  select distinct on (customer_id, idempotency_key) usage_uuidv7() as id, g.*
    from given g order by customer_id, idempotency_key, ord
${lookup ? `), earlier as (${earlierSql(lookIn)}` : ''}${packed ? `), packed as (${packedSql}` : ''}
), ins as (
  insert into usage_events as e (occurred_at, id, customer_id, occurred_month, state, request_hash, metric, quantity, idempotency_key)
  select occurred_at, id, customer_id, usage_month(occurred_at), case when $7::text = 'pending' then 's' else 'l' end::char(1),
         request_hash, metric, quantity::numeric, idempotency_key
    from input i${
      lookup
        ? `
   where not exists (select 1 from earlier x where x.customer_id = i.customer_id and x.idempotency_key = i.idempotency_key)`
        : ''
    }${
      packed
        ? `
   ${lookup ? 'and' : 'where'} not exists (select 1 from packed x where x.customer_id = i.customer_id and x.idempotency_key = i.idempotency_key)`
        : ''
    }
   order by customer_id, idempotency_key
  on conflict on constraint usage_events_customer_idempotency_unique do update set request_hash = e.request_hash
  returning e.id, e.customer_id, e.idempotency_key, e.metric, e.quantity, e.occurred_at, e.request_hash
), found as (
  select * from ins${lookup ? ' union all select * from earlier' : ''}${packed ? ' union all select * from packed' : ''}
), fresh as (
  select ins.* from ins join input i on i.id = ins.id${
    forward
      ? `
), queued as (
  -- With Stripe on, each new event's forwarding starts here (usage_outbox), due at once.
  insert into usage_outbox (occurred_at, next_attempt_at, id, customer_id, occurred_month, state, metric, quantity, idempotency_key)
  select f.occurred_at, now(), f.id, f.customer_id, usage_month(f.occurred_at), 'pending', f.metric, f.quantity, f.idempotency_key
    from fresh f where $7::text = 'pending'`
      : ''
  }
), roll as (
  insert into usage_daily as d (customer_id, metric, day, shard, quantity, events)
  select customer_id, metric, (occurred_at at time zone 'UTC')::date,
         coalesce(nullif(current_setting('billing.rollup_shard', true), ''), '0')::smallint, sum(quantity), count(*)
    from fresh group by 1, 2, 3 order by 1, 2, 3
  on conflict on constraint usage_daily_pkey do update
    set quantity = d.quantity + excluded.quantity, events = d.events + excluded.events
), verdict as (
  select g.ord, f.id, (f.id = i.id and g.ord = i.ord) as created, f.request_hash <> g.request_hash as conflict, i.ord as leader,
         (f.id = i.id) as fresh, f.occurred_at
    from given g
    join input i on i.customer_id = g.customer_id and i.idempotency_key = g.idempotency_key
    join found f on f.customer_id = g.customer_id and f.idempotency_key = g.idempotency_key
), refused as (
  -- All or nothing (a batch): any conflict fails the whole statement, so nothing of it is kept.
  -- The error's DETAIL lists each conflicting event: its index, its key's first index, and whether
  -- that key was stored by this very statement (a repeat inside the request) or before.
  select usage_refuse_write(${refusalDetailSql('v')})
    from verdict v where $8::boolean and v.conflict having count(*) > 0
)
-- One row, one value: every event's outcome in the order given (write-answer.ts), brief for an
-- all-or-nothing write.
select ${answerListSql('v', '$8::boolean')} as events
  from verdict v left join refused on true`;
}

/** `earlier` for events stamped at receipt: their keys in the months `lookIn` (YYYY-MM-DD, constants). */
const earlierSql = (lookIn: readonly string[]) => `
  select distinct on (e.customer_id, e.idempotency_key) e.id, e.customer_id, e.idempotency_key, e.metric, e.quantity, e.occurred_at, e.request_hash
    from input i
    join usage_events e on e.customer_id = i.customer_id and e.idempotency_key = i.idempotency_key
     and e.occurred_month in (${lookIn.map((m) => `date '${m}'`).join(', ')})
   where i.occurred_ms is null
   order by e.customer_id, e.idempotency_key, e.occurred_month desc`;

/**
 * `packed` for a write with late events (older than LATE_WRITE_AGE_MS, written under their months'
 * pack locks: usage-partitions/packing.ts): their keys in the packs of their months, unnested once per
 * (customer, month) and matched to the events given. A packed month holds each key once, as its
 * partition does, so a key found here is that event (a replay or a conflict), never a second.
 */
const packedSql = `
  select u.id, p.customer_id, u.idempotency_key, p.metric, u.quantity, ${packedOccurredAt('p')} as occurred_at, ${packedRequestHash('p')} as request_hash
    from (select distinct customer_id, usage_month(occurred_at) as month from input) m
    join usage_event_packs p on p.customer_id = m.customer_id and p.day >= m.month and p.day < (m.month + interval '1 month')::date
    ${unnestPack('p')}
    join input i on i.customer_id = p.customer_id and i.idempotency_key = u.idempotency_key and usage_month(i.occurred_at) = m.month`;

/**
 * The months other than `nowMs`'s own where a retry of an event stamped at `nowMs` may have its first
 * copy: those of the last 35 days (MAX_AGE_MS, what POST /api/usage takes) and, within
 * MONTH_TURN_WINDOW_MS of the turn, the next month. As usage_month() gives them: the first of a UTC
 * month, YYYY-MM-DD.
 */
export function lookbackMonths(nowMs: number): string[] {
  const monthOfMs = (ms: number) => {
    const d = new Date(ms);
    return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  };
  const current = monthOfMs(nowMs);
  const last = monthOfMs(nowMs + MONTH_TURN_WINDOW_MS);
  const months: string[] = [];
  for (let m = monthOfMs(nowMs - MAX_AGE_MS); m <= last; m = monthOfMs(m + 32 * DAY_MS)) {
    if (m !== current) months.push(isoDay(new Date(m)));
  }
  return months;
}

/**
 * lookbackMonths once a minute rather than for every statement: every edge it turns on (a month's
 * start, and 35 days and MONTH_TURN_WINDOW_MS from one) is a whole minute.
 */
let lookbackCache: { minute: number; months: readonly string[] } | null = null;
function lookbackAt(nowMs: number): readonly string[] {
  const minute = Math.floor(nowMs / 60_000);
  if (lookbackCache?.minute !== minute) lookbackCache = { minute, months: lookbackMonths(nowMs) };
  return lookbackCache.months;
}

/**
 * What a write's text holds besides the insert: the months to look in for events stamped at receipt
 * (none when every event carries occurred_at), and whether new events are queued for Stripe (state
 * `pending`; with Stripe off there is no outbox insert in the plan at all).
 */
export interface WriteShape {
  lookIn: readonly string[];
  forward: boolean;
  /** Some event is late enough for its month to be packed: look in the packs too (packedSql). */
  packed?: boolean;
}

/**
 * The write's named statement for its shape (writeSql): `usage-write` without a lookup,
 * `usage-lookback-write` with one, whose text changes when the month turns (a connection then
 * prepares the new one). A handful at most are kept.
 */
const statements = new Map<string, NamedStatement>();
function writeStatement(shape: WriteShape): NamedStatement {
  const key = `${shape.forward ? 'f' : 'l'}${shape.packed ? 'p' : ''}:${shape.lookIn.join(',')}`;
  let statement = statements.get(key);
  if (!statement) {
    if (statements.size >= 8) statements.clear();
    const label = shape.packed ? 'usage-late-write' : shape.lookIn.length === 0 ? 'usage-write' : 'usage-lookback-write';
    statement = namedStatement(label, writeSql(shape));
    statements.set(key, statement);
  }
  return statement;
}

/** SQLSTATE of an all-or-nothing write refused for a conflict; the DETAIL is JSON naming the events. */
export const WRITE_REFUSED_SQLSTATE = 'BL409';

export class WriteRefusedError extends Error {
  constructor(readonly events: RefusedEvent[]) {
    super('an idempotency key was already used with a different event');
  }
}

/** writeSql's one row: the events given, in the order given, as write-answer.ts encodes them. */
interface WriteRow {
  events: string;
}

/** The totals query's rows: the grouping columns asked for; null sums when nothing matched. */
type TotalsSqlRow = Partial<Pick<UsageDailyRow, 'customer_id' | 'metric' | 'day'>> & { quantity: string | null; events: string | null };

const DAY_MS = 24 * 3600 * 1000;
const floorDay = (d: Date) => new Date(Math.floor(d.getTime() / DAY_MS) * DAY_MS);
const ceilDay = (d: Date) => new Date(Math.ceil(d.getTime() / DAY_MS) * DAY_MS);
const isoDay = (d: Date) => d.toISOString().slice(0, 10);

/*
 * Array parameters as PostgreSQL array literals, built here rather than by pg (which quotes and
 * escapes every element with two regular expressions): a 100-event batch sends five of them.
 */

/** A bigint[] whose NULL elements mean "not given". Integers only, so nothing to quote. */
const bigintArray = (values: readonly (number | null)[]): string => `{${values.map((v) => (v === null ? 'NULL' : String(v))).join(',')}}`;

/** A uuid[]: the ids come from verified keys (hex digits and dashes), nothing to quote. */
const uuidArray = (values: readonly string[]): string => `{${values.join(',')}}`;

/** A text[]: every element quoted (so NULL and empty strings stay strings); quotes and backslashes escaped. */
function textArray(values: readonly string[]): string {
  for (const v of values) if (NEEDS_ESCAPE.test(v)) return `{${values.map((x) => `"${x.replace(ESCAPED, '\\$&')}"`).join(',')}}`;
  return `{"${values.join('","')}"}`;
}
const NEEDS_ESCAPE = /["\\]/;
const ESCAPED = /["\\]/g;

const GROUP_COLUMNS = { customer: 'customer_id', metric: 'metric', day: 'day' } as const;

/**
 * Runs the write (writeSql) on a pooled connection of its own, or with `run` in the caller's
 * transaction; a refused all-or-nothing write becomes a WriteRefusedError naming the events.
 */
async function runWrite(
  db: Knex,
  events: readonly EventToWrite[],
  state: ForwardingState,
  nowMs: number,
  allOrNothing: boolean,
  run: typeof runNamed = runNamed,
): Promise<WriteRow> {
  const lateMonths = packLockMonths(events, nowMs);
  const turn = needsTurnLock(events, nowMs);
  if (turn || lateMonths.length > 0) {
    if (db.isTransaction) {
      if (turn) await lockTurn(db, events);
      if (lateMonths.length > 0) await lockMonthsShared(db, lateMonths);
    } else {
      return db.transaction(async (trx) => runWrite(trx, events, state, nowMs, allOrNothing, runNamedInTransaction));
    }
  }
  try {
    const lookIn = events.some((e) => !e.occurredAt) ? lookbackAt(nowMs) : [];
    const [row] = await run<WriteRow>(db, writeStatement({ lookIn, forward: state === 'pending', packed: lateMonths.length > 0 }), [
      uuidArray(events.map((e) => e.customerId)),
      textArray(events.map((e) => e.metric)),
      textArray(events.map((e) => e.quantity)),
      bigintArray(events.map((e) => (e.occurredAt ? e.occurredAt.getTime() : null))),
      textArray(events.map((e) => e.idempotencyKey)),
      nowMs,
      state,
      allOrNothing,
    ]);
    return row!;
  } catch (err) {
    const e = err as { code?: string; detail?: string };
    if (e.code !== WRITE_REFUSED_SQLSTATE || e.detail === undefined) throw err;
    throw new WriteRefusedError(decodeRefusal(e.detail));
  }
}

/** Whether `ms` lies within MONTH_TURN_WINDOW_MS of the start of a UTC month (either side). */
export function nearMonthTurn(ms: number): boolean {
  const d = new Date(ms);
  const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  const next = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
  return ms - start < MONTH_TURN_WINDOW_MS || next - ms <= MONTH_TURN_WINDOW_MS;
}

/** The months of the write's late events (packing.ts: writesUnderPackLock), whose pack locks it takes. */
function packLockMonths(events: readonly EventToWrite[], nowMs: number): string[] {
  let months: Set<string> | null = null;
  for (const e of events) if (e.occurredAt && writesUnderPackLock(e.occurredAt.getTime(), nowMs)) (months ??= new Set()).add(monthOfPartition(e.occurredAt));
  return months ? [...months] : [];
}

const needsTurnLock = (events: readonly EventToWrite[], nowMs: number) => nearMonthTurn(nowMs) && events.some((e) => !e.occurredAt);

/**
 * A transaction-scoped advisory lock per customer of the write's events stamped at receipt, taken in
 * customer order (sorted here; unnest keeps it), so two such writes never wait on each other in a cycle, before the write's own
 * statement: its snapshot then sees whatever a writer holding the lock before it committed.
 */
async function lockTurn(trx: Knex, events: readonly EventToWrite[]): Promise<void> {
  const customers = [...new Set(events.filter((e) => !e.occurredAt).map((e) => e.customerId))].sort();
  await trx.raw(`select pg_advisory_xact_lock(hashtext('usage-month-turn'), hashtext(c::text)) from unnest(?::uuid[]) as c`, [uuidArray(customers)]);
}

/** A period's usage to read: one customer's metric over whole UTC days [fromDay, toDay). */
export interface PeriodQuery {
  customerId: string;
  metric: string;
  /** YYYY-MM-DD, included. */
  fromDay: string;
  /** YYYY-MM-DD, excluded. */
  toDay: string;
}

/**
 * The quantity of each (customer, metric, days) asked for, from the daily totals alone (every shard
 * of each day): one index range per row asked, never the raw events. In the order asked.
 */
const PERIOD_TOTALS_SQL = `
select coalesce(sum(d.quantity), 0)::text as quantity
  from unnest($1::uuid[], $2::text[], $3::date[], $4::date[]) with ordinality as p(customer_id, metric, from_day, to_day, ord)
  left join usage_daily d on d.customer_id = p.customer_id and d.metric = p.metric and d.day >= p.from_day and d.day < p.to_day
 group by p.ord
 order by p.ord`;
const PERIOD_TOTALS = namedStatement('usage-period-totals', PERIOD_TOTALS_SQL);

export function createUsageRepository() {
  return {
    /** Each period's quantity (a decimal string), in the order asked (see PERIOD_TOTALS_SQL). */
    async periodTotals(db: Knex, queries: readonly PeriodQuery[]): Promise<string[]> {
      if (queries.length === 0) return [];
      const rows = await runNamed<{ quantity: string }>(db, PERIOD_TOTALS, [
        uuidArray(queries.map((q) => q.customerId)),
        textArray(queries.map((q) => q.metric)),
        textArray(queries.map((q) => q.fromDay)),
        textArray(queries.map((q) => q.toDay)),
      ]);
      return rows.map((r) => trimDecimal(r.quantity));
    },

    /**
     * Writes events (see writeSql) and says, for each one given, what became of it: single events
     * of many customers, each settling on its own (a conflict is that event's answer). Absent
     * occurred_at is stored as `nowMs`.
     */
    async write(db: Knex, events: readonly EventToWrite[], state: ForwardingState, nowMs: number): Promise<WriteOutcome[]> {
      if (events.length === 0) return [];
      return decodeOutcomes((await runWrite(db, events, state, nowMs, false)).events);
    },

    /**
     * The same write in the caller's transaction (a usage bundle's events, with its receipt): each
     * event settles on its own, and nothing is kept unless the transaction commits.
     */
    async writeInTransaction(trx: Knex, events: readonly EventToWrite[], state: ForwardingState, nowMs: number): Promise<WriteOutcome[]> {
      if (events.length === 0) return [];
      return decodeOutcomes((await runWrite(trx, events, state, nowMs, false, runNamedInTransaction)).events);
    },

    /**
     * Events just written (in the caller's transaction) that are late usage: never sent as meter
     * events (out of the forwarder's queue, the event's state `t`); a true-up bills them.
     */
    async markLate(trx: Knex, ids: readonly string[]): Promise<void> {
      if (ids.length === 0) return;
      // Their outbox rows go (they were just queued by the write), and the events say `late`.
      await trx.raw(
        `with gone as (delete from usage_outbox where id = any(?::uuid[]) and state = 'pending' returning customer_id, idempotency_key, occurred_month)
         update usage_events e set state = 't'
           from gone g
          where e.customer_id = g.customer_id and e.idempotency_key = g.idempotency_key and e.occurred_month = g.occurred_month`,
        [uuidArray(ids)],
      );
    },

    /**
     * Writes events all or nothing (a batch): a conflict anywhere refuses the whole statement
     * (WriteRefusedError naming the events) and nothing of it is kept. Otherwise each event's id,
     * and whether this write stored it.
     */
    async writeAllOrNothing(db: Knex, events: readonly EventToWrite[], state: ForwardingState, nowMs: number): Promise<StoredEvent[]> {
      if (events.length === 0) return [];
      return decodeStored((await runWrite(db, events, state, nowMs, true)).events);
    },

    /**
     * Totals over [from, to): whole UTC days from the daily table, the partial days at either
     * end from the events themselves. Exact, and the cost grows with days, not events.
     */
    async totals(db: Knex, q: TotalsQuery): Promise<TotalsRow[]> {
      // Whole days [dayFrom, dayTo) come from usage_daily; the ragged ends from the events.
      let dayFrom = ceilDay(q.from);
      let dayTo = floorDay(q.to);
      const edges: [Date, Date][] = [];
      if (dayFrom < dayTo) {
        if (q.from < dayFrom) edges.push([q.from, dayFrom]);
        if (dayTo < q.to) edges.push([dayTo, q.to]);
      } else {
        dayFrom = dayTo = q.from;
        edges.push([q.from, q.to]);
      }
      const filters = (alias: string) => {
        const parts: string[] = [];
        const bindings: string[] = [];
        if (q.customerId) {
          parts.push(`${alias}.customer_id = ?`);
          bindings.push(q.customerId);
        }
        if (q.metric) {
          parts.push(`${alias}.metric = ?`);
          bindings.push(q.metric);
        }
        return { sql: parts.map((p) => ` and ${p}`).join(''), bindings };
      };
      const branches: string[] = [];
      const bindings: string[] = [];
      if (dayFrom < dayTo) {
        const f = filters('d');
        branches.push(`select d.customer_id, d.metric, d.day, d.quantity, d.events
             from usage_daily d where d.day >= ?::date and d.day < ?::date${f.sql}`);
        bindings.push(isoDay(dayFrom), isoDay(dayTo), ...f.bindings);
      }
      // An edge in a month whose raw events are gone (archived and dropped) is read as whole days from
      // usage_daily: reports on such months are exact to the day.
      const gone = await droppedMonths(db);
      for (const [a, b] of edges) {
        if (gone.has(monthOf(a)) || gone.has(monthOf(new Date(b.getTime() - 1)))) {
          const f = filters('d');
          branches.push(`select d.customer_id, d.metric, d.day, d.quantity, d.events
             from usage_daily d where d.day >= ?::date and d.day < ?::date${f.sql}`);
          bindings.push(isoDay(floorDay(a)), isoDay(ceilDay(b)), ...f.bindings);
          continue;
        }
        // One range scan per edge: an OR of ranges can defeat the (customer_id, occurred_at) index.
        const f = filters('e');
        branches.push(`select e.customer_id, e.metric, (e.occurred_at at time zone 'UTC')::date, e.quantity, 1
             from usage_events e where e.occurred_at >= ? and e.occurred_at < ?${f.sql}`);
        bindings.push(a.toISOString(), b.toISOString(), ...f.bindings);
        // A settled month holds its events in usage_event_packs (packing.ts), with any written since
        // beside them as rows. Read whatever the clock says (the packer's may be ahead): an index range
        // on the day, empty for a month not packed.
        const fp = filters('p');
        branches.push(`select p.customer_id, p.metric, p.day, u.quantity, 1
             from usage_event_packs p ${unnestPackQuantities('p')}
            where p.day >= ?::date and p.day < ?::date${fp.sql} and ${packedOccurredAt('p')} >= ? and ${packedOccurredAt('p')} < ?`);
        bindings.push(isoDay(floorDay(a)), isoDay(ceilDay(b)), ...fp.bindings, a.toISOString(), b.toISOString());
      }
      const cols = q.groupBy.map((g) => GROUP_COLUMNS[g]);
      const select = cols.length ? `${cols.join(', ')}, ` : '';
      const group = cols.length ? `group by ${cols.join(', ')} order by ${cols.join(', ')}` : '';
      const { rows }: { rows: TotalsSqlRow[] } = await db.raw(
        `with src(customer_id, metric, day, quantity, events) as (${branches.join(' union all ')})
         select ${select}sum(quantity)::text as quantity, sum(events)::bigint as events from src ${group}`,
        bindings,
      );
      return rows
        .filter((r): r is TotalsSqlRow & { quantity: string } => r.quantity !== null)
        .map((r) => ({
          ...(r.customer_id !== undefined ? { customerId: r.customer_id } : {}),
          ...(r.metric !== undefined ? { metric: r.metric } : {}),
          ...(r.day !== undefined ? { day: r.day } : {}),
          quantity: trimDecimal(r.quantity),
          events: Number(r.events),
        }));
    },
  };
}

export type UsageRepository = ReturnType<typeof createUsageRepository>;
