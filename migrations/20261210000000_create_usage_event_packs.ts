import type { Knex } from 'knex';

/**
 * Settled months of usage_events, packed (docs/SCALING.md, Settled months, packed): once a month can
 * take no event online any more, its events move out of its partition into one row per customer, UTC
 * day and metric, their fields as arrays in one order (the i-th id, time, quantity, key, fingerprint
 * and state are one event). TOAST compresses the arrays: about 45 bytes an event where a row with its
 * two B-tree entries costs about 240. Written only by the partition maintenance, under the month's
 * lock (src/modules/usage-partitions/packing.ts).
 * - us: the microseconds since the day's start (UTC);
 * - hashes: the request fingerprints, 16 bytes each, concatenated;
 * - states: one character an event, as usage_events.state (s, l or t);
 * - events, local, routed: counts, so the forwarding report need not open the arrays.
 * The key holds customer_id, like every key of the usage tables (distribution by customer).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`create table usage_event_packs (
    customer_id uuid not null references customers (id) on delete restrict,
    day date not null,
    metric text not null,
    events integer not null,
    local integer not null,
    routed integer not null,
    ids uuid[] not null,
    us bigint[] not null,
    quantities numeric[] not null,
    keys text[] not null,
    hashes bytea not null,
    states text not null,
    constraint usage_event_packs_pkey primary key (customer_id, day, metric),
    constraint usage_event_packs_lengths check (
      cardinality(ids) = events and cardinality(us) = events and cardinality(quantities) = events
      and cardinality(keys) = events and length(hashes) = 16 * events and length(states) = events)
  )`);
  await knex.raw('create index usage_event_packs_day on usage_event_packs (day)');
  await knex.raw(`create table usage_packed_months (
    month date primary key,
    events bigint not null,
    bytes_before bigint not null,
    bytes_after bigint not null,
    packed_at timestamptz not null default now()
  )`);
}

export async function down(knex: Knex): Promise<void> {
  // Packed events go back to rows in their months' partitions first: nothing is lost going down.
  await knex.raw(`insert into usage_events (occurred_at, id, customer_id, occurred_month, state, request_hash, metric, quantity, idempotency_key)
    select t.occurred_at, u.id, p.customer_id, usage_month(t.occurred_at), substring(p.states from u.n::int for 1)::char(1),
           substring(p.hashes from (u.n::int - 1) * 16 + 1 for 16), p.metric, u.quantity, u.idempotency_key
      from usage_event_packs p
      cross join lateral unnest(p.ids, p.us, p.quantities, p.keys) with ordinality as u(id, us, quantity, idempotency_key, n)
      cross join lateral (select (p.day::timestamp + u.us * interval '1 microsecond') at time zone 'UTC' as occurred_at) t`);
  await knex.raw('drop table usage_packed_months');
  await knex.raw('drop table usage_event_packs');
}
