import type { Knex } from 'knex';
import { jsonb, type EventRow } from '../../db/tables';
import { filtersTakeSql } from './event-types';

export interface Event {
  id: string;
  type: string;
  customerId: string | null;
  data: Record<string, unknown>;
  createdAt: Date;
}

export interface NewEvent {
  id: string;
  type: string;
  customerId: string | null;
  data: Record<string, unknown>;
}

export interface EventFilter {
  /** Any of these types (a `license.*` filter is expanded to its types before it gets here). */
  types?: readonly string[];
  customerId?: string;
  /** An event id: only events older than it (ids are time-ordered). */
  beforeId?: string;
  limit: number;
}

export const toEvent = (r: EventRow): Event => ({ id: r.id, type: r.type, customerId: r.customer_id, data: r.data, createdAt: r.created_at });

/*
 * The events and, in the same statement, one pending delivery for every enabled endpoint that wants
 * each: an endpoint's filter is a list of types, `<object>.*` or `*`, matched by array overlap.
 * Written in the caller's transaction, so an event exists exactly when its change committed.
 */
const INSERT_SQL = `
with e as (
  insert into events (id, type, customer_id, data)
  select * from unnest(?::text[], ?::text[], ?::uuid[], ?::jsonb[])
  returning id, type
)
insert into webhook_deliveries (event_id, endpoint_id)
select e.id, w.id
  from e join webhook_endpoints w
    on not w.disabled and ${filtersTakeSql('w.events', 'e.type')}`;

/*
 * Retention: one bounded batch of events created before the cutoff, oldest first, none with a
 * delivery still pending (an event is kept while anyone still owes it a delivery, however old).
 * SKIP LOCKED: a row another transaction holds (a resend adding a delivery to it) is left for the
 * next run rather than waited for. Deliveries and attempts go with their event by cascade.
 */
const DELETE_EXPIRED_SQL = `
delete from events where id in (
  select e.id from events e
   where e.created_at < ?
     and not exists (select 1 from webhook_deliveries d where d.event_id = e.id and d.state = 'pending')
   order by e.created_at
   limit ?
   for update of e skip locked
)`;

export function createEventsRepository() {
  return {
    async insert(db: Knex, events: readonly NewEvent[]): Promise<void> {
      if (events.length === 0) return;
      await db.raw(INSERT_SQL, [
        events.map((e) => e.id),
        events.map((e) => e.type),
        events.map((e) => e.customerId) as string[],
        events.map((e) => jsonb(e.data)),
      ]);
    },

    async findById(db: Knex, id: string): Promise<Event | null> {
      const row = await db('events').where({ id }).first();
      return row ? toEvent(row) : null;
    },

    /** Newest first (ids are evt_ + UUIDv7: id order is creation order). */
    async list(db: Knex, f: EventFilter): Promise<Event[]> {
      const q = db('events').select('*').orderBy('id', 'desc').limit(f.limit);
      if (f.types) q.whereIn('type', [...f.types]);
      if (f.customerId) q.where('customer_id', f.customerId);
      if (f.beforeId) q.where('id', '<', f.beforeId);
      return (await q).map(toEvent);
    },

    /** Deletes one batch of expired events (see DELETE_EXPIRED_SQL); returns how many. */
    async deleteExpired(db: Knex, createdBefore: Date, batchSize: number): Promise<number> {
      const r = await db.raw<{ rowCount: number | null }>(DELETE_EXPIRED_SQL, [createdBefore, batchSize]);
      return r.rowCount ?? 0;
    },
  };
}

export type EventsRepository = ReturnType<typeof createEventsRepository>;
