import type { Knex } from 'knex';

/** The tables a change writes that a fault can be set on, besides `events` itself. */
const CHANGED_TABLES = ['customers', 'api_keys', 'subscriptions', 'usage_outbox'] as const;
export type ChangedTable = (typeof CHANGED_TABLES)[number];

/**
 * Makes chosen transactions fail at COMMIT, through deferred constraint triggers: the statements
 * all succeed, and the transaction cannot commit. A fault names either an event type (the
 * transaction that writes such an event for the customer fails: an event written after the change
 * committed would leave the change behind) or a table (the transaction that writes the customer's
 * row there fails: an event committed on its own, before the change, would be left behind). Either
 * way a change and its events must vanish together.
 */
export function eventFaults(db: Knex) {
  return {
    async install(): Promise<void> {
      await db.raw(`
        create table if not exists test_event_faults (name text not null, customer_id uuid, email text, state text);
        create or replace function test_event_fault() returns trigger language plpgsql as $$
        declare
          j jsonb := to_jsonb(new);
          n text := case when tg_table_name = 'events' then j->>'type' else tg_table_name end;
          cust text := case when tg_table_name = 'customers' then j->>'id' else j->>'customer_id' end;
          mail text := coalesce(j->>'email', j->'data'->>'email');
        begin
          if exists (select 1 from test_event_faults f where f.name = n and (f.customer_id::text = cust or f.email = mail) and (f.state is null or f.state = j->>'state')) then
            raise exception 'injected failure at commit (%)', n;
          end if;
          return null;
        end $$;`);
      for (const table of ['events', ...CHANGED_TABLES]) {
        await db.raw(`drop trigger if exists test_event_fault on ${table}`);
        await db.raw(
          `create constraint trigger test_event_fault after insert or update on ${table} deferrable initially deferred for each row execute function test_event_fault()`,
        );
      }
    },
    async uninstall(): Promise<void> {
      for (const table of ['events', ...CHANGED_TABLES]) await db.raw(`drop trigger if exists test_event_fault on ${table}`);
      await db.raw(`drop function if exists test_event_fault(); drop table if exists test_event_faults;`);
    },
    /**
     * Until cleared, the customer's transactions writing an event of this type (or a row of this
     * table; with `state`, only a row written with that state) fail at commit.
     */
    async fail(name: string, customerId: string, state?: string): Promise<void> {
      await db('test_event_faults').insert({ name, customer_id: customerId, state: state ?? null });
    },
    /** The same for the customer with this email (a customer not made yet has no id to name). */
    async failEmail(name: string, email: string): Promise<void> {
      await db('test_event_faults').insert({ name, email });
    },
    async clear(): Promise<void> {
      await db('test_event_faults').delete();
    },
  };
}

/** The events written about a customer, oldest first (ids are time-ordered, to the millisecond). */
export async function eventsOf(db: Knex, customerId: string, type?: string) {
  const q = db('events').where({ customer_id: customerId }).orderBy('id');
  if (type) q.where({ type });
  return (await q) as { id: string; type: string; customer_id: string | null; data: Record<string, unknown> }[];
}

/** Types of the customer's events, in order. */
export async function typesOf(db: Knex, customerId: string): Promise<string[]> {
  return (await eventsOf(db, customerId)).map((e) => e.type);
}
