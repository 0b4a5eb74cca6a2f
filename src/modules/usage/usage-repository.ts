import type { Knex } from 'knex';
import { trimDecimal } from './quantity';

export type ForwardingState = 'pending' | 'sent' | 'failed' | 'local';

export interface UsageEvent {
  id: string;
  customerId: string;
  metric: string;
  quantity: string;
  occurredAt: Date;
  idempotencyKey: string;
  receivedAt: Date;
}

/** An event as the application writes it (received_at is the database's). */
export type NewUsageEvent = Omit<UsageEvent, 'receivedAt'> & { requestHash: string };

export type StoredEvent = UsageEvent & { requestHash: string };

/** What a batch insert says of each key: the stored event's id, and whether it is new. */
export interface BatchOutcome {
  id: string;
  idempotencyKey: string;
  created: boolean;
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

interface EventRow {
  id: string;
  customer_id: string;
  metric: string;
  quantity: string;
  occurred_at: Date;
  idempotency_key: string;
  received_at: Date;
  request_hash?: string;
}

const toEvent = (r: EventRow): UsageEvent => ({
  id: r.id,
  customerId: r.customer_id,
  metric: r.metric,
  quantity: trimDecimal(r.quantity),
  occurredAt: r.occurred_at,
  idempotencyKey: r.idempotency_key,
  receivedAt: r.received_at,
});

/**
 * One statement: insert the new events (duplicates skipped by the unique constraint, which
 * decides under concurrency) and add exactly the inserted ones to the daily totals. Arrays
 * through unnest keep the SQL text constant whatever the batch size. Rows go in key order so
 * concurrent batches take locks in the same order.
 */
const INSERT_SQL = `
with input as (
  select * from unnest(?::uuid[], ?::uuid[], ?::text[], ?::numeric[], ?::timestamptz[], ?::text[], ?::text[])
    as t(id, customer_id, metric, quantity, occurred_at, idempotency_key, request_hash)
  order by customer_id, idempotency_key
), ins as (
  insert into usage_events (id, customer_id, metric, quantity, occurred_at, idempotency_key, request_hash, state, next_attempt_at)
  select id, customer_id, metric, quantity, occurred_at, idempotency_key, request_hash, ?::text,
         case when ?::text = 'pending' then now() end
    from input
  on conflict (customer_id, idempotency_key) do nothing
  returning id, customer_id, metric, quantity, occurred_at, idempotency_key, received_at
), roll as (
  insert into usage_daily (customer_id, metric, day, shard, quantity, events)
  select customer_id, metric, (occurred_at at time zone 'UTC')::date,
         coalesce(nullif(current_setting('billing.rollup_shard', true), ''), '0')::smallint, sum(quantity), count(*)
    from ins group by 1, 2, 3 order by 1, 2, 3
  on conflict (customer_id, metric, day, shard) do update
    set quantity = usage_daily.quantity + excluded.quantity, events = usage_daily.events + excluded.events
)
select id, customer_id, idempotency_key, floor(extract(epoch from received_at) * 1000)::bigint as received_ms from ins`;

export const IDEMPOTENCY_CONFLICT_SQLSTATE = 'BL409';

const DAY_MS = 24 * 3600 * 1000;
const floorDay = (d: Date) => new Date(Math.floor(d.getTime() / DAY_MS) * DAY_MS);
const ceilDay = (d: Date) => new Date(Math.ceil(d.getTime() / DAY_MS) * DAY_MS);
const isoDay = (d: Date) => d.toISOString().slice(0, 10);

const GROUP_COLUMNS = { customer: 'customer_id', metric: 'metric', day: 'day' } as const;

export function createUsageRepository() {
  return {
    /**
     * Returns the events actually inserted (built from the input plus the stored id and
     * received_at, so little comes back over the wire); events whose key existed are absent.
     */
    async insert(db: Knex, events: NewUsageEvent[], state: ForwardingState): Promise<UsageEvent[]> {
      if (events.length === 0) return [];
      const result = await db.raw(INSERT_SQL, [
        events.map((e) => e.id),
        events.map((e) => e.customerId),
        events.map((e) => e.metric),
        events.map((e) => e.quantity),
        events.map((e) => e.occurredAt.toISOString()),
        events.map((e) => e.idempotencyKey),
        events.map((e) => e.requestHash),
        state,
        state,
      ]);
      const byId = new Map(events.map((e) => [e.id, e]));
      return (result.rows as { id: string; received_ms: string }[]).map((r) => {
        const e = byId.get(r.id)!;
        return {
          id: e.id,
          customerId: e.customerId,
          metric: e.metric,
          quantity: e.quantity,
          occurredAt: e.occurredAt,
          idempotencyKey: e.idempotencyKey,
          receivedAt: new Date(Number(r.received_ms)),
        };
      });
    },

    /**
     * A whole batch in one atomic statement (see ingest_usage_batch): new events are inserted,
     * stored ones come back as replays, and any key stored with another body fails it all
     * with SQLSTATE BL409 (IDEMPOTENCY_CONFLICT_SQLSTATE).
     */
    async insertBatch(
      db: Knex,
      customerId: string,
      events: { metric: string; quantity: string; occurredAt?: Date; idempotencyKey: string }[],
      state: ForwardingState,
    ): Promise<BatchOutcome[]> {
      const result = await db.raw('select * from ingest_usage_batch(?::uuid, ?::text[], ?::text[], ?::bigint[], ?::text[], ?::text)', [
        customerId,
        events.map((e) => e.metric),
        events.map((e) => e.quantity),
        // null elements become SQL NULLs ("not given"); knex's types do not model that.
        events.map((e) => (e.occurredAt ? e.occurredAt.getTime() : null)) as unknown as number[],
        events.map((e) => e.idempotencyKey),
        state,
      ]);
      return (result.rows as { id: string; idempotency_key: string; created: boolean }[]).map((r) => ({
        id: r.id,
        idempotencyKey: r.idempotency_key,
        created: r.created,
      }));
    },

    async findByKeys(db: Knex, keys: { customerId: string; idempotencyKey: string }[]): Promise<StoredEvent[]> {
      if (keys.length === 0) return [];
      const result = await db.raw(
        `select e.id, e.customer_id, e.metric, e.quantity::text as quantity, e.occurred_at, e.idempotency_key, e.received_at, e.request_hash
           from usage_events e
           join unnest(?::uuid[], ?::text[]) as k(customer_id, idempotency_key)
             on e.customer_id = k.customer_id and e.idempotency_key = k.idempotency_key`,
        [keys.map((k) => k.customerId), keys.map((k) => k.idempotencyKey)],
      );
      return (result.rows as Required<EventRow>[]).map((r) => ({ ...toEvent(r), requestHash: r.request_hash }));
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
      for (const [a, b] of edges) {
        // One range scan per edge: an OR of ranges can defeat the (customer_id, occurred_at) index.
        const f = filters('e');
        branches.push(`select e.customer_id, e.metric, (e.occurred_at at time zone 'UTC')::date, e.quantity, 1
             from usage_events e where e.occurred_at >= ? and e.occurred_at < ?${f.sql}`);
        bindings.push(a.toISOString(), b.toISOString(), ...f.bindings);
      }
      const cols = q.groupBy.map((g) => GROUP_COLUMNS[g]);
      const select = cols.length ? `${cols.join(', ')}, ` : '';
      const group = cols.length ? `group by ${cols.join(', ')} order by ${cols.join(', ')}` : '';
      const result = await db.raw(
        `with src(customer_id, metric, day, quantity, events) as (${branches.join(' union all ')})
         select ${select}sum(quantity)::text as quantity, sum(events)::bigint as events from src ${group}`,
        bindings,
      );
      return (result.rows as { customer_id?: string; metric?: string; day?: string; quantity: string | null; events: string | null }[])
        .filter((r) => r.quantity !== null)
        .map((r) => ({
          ...(r.customer_id !== undefined ? { customerId: r.customer_id } : {}),
          ...(r.metric !== undefined ? { metric: r.metric } : {}),
          ...(r.day !== undefined ? { day: r.day } : {}),
          quantity: trimDecimal(r.quantity!),
          events: Number(r.events),
        }));
    },
  };
}

export type UsageRepository = ReturnType<typeof createUsageRepository>;
