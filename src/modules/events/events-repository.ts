import type { Knex } from 'knex';
import { jsonb, type EventRow } from '../../db/tables';

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
    on not w.disabled and w.events && array['*', e.type, split_part(e.type, '.', 1) || '.*']`;

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
  };
}

export type EventsRepository = ReturnType<typeof createEventsRepository>;
