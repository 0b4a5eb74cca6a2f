-- A settled month's events in a packed form, measured against the same events as rows (docs/SCALING.md,
-- "Settled months, packed"). Not what the service stores: the measurement behind the next step.
-- Run on a scratch database (it creates and leaves ev_raw and ev_packed):
--   createdb -h 127.0.0.1 -U postgres packed && psql -h 127.0.0.1 -U postgres -d packed -f bench/packed-month.sql
\timing on
drop table if exists ev_raw, ev_packed;
create table ev_raw (occurred_at timestamptz not null, id uuid not null, customer_id uuid not null, occurred_month date not null,
  state char(1) not null, request_hash bytea not null, metric text not null, quantity numeric not null, idempotency_key text not null);
-- 100 customers x 20,000 events over 30 days, keys as bench:scale makes them (8 hex digits, a dash, 11 digits)
insert into ev_raw
select ts, encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing substring(int8send((extract(epoch from ts) * 1000)::bigint) from 3) from 1 for 6), 52, 1), 53, 1), 'hex')::uuid,
       c.id, date_trunc('month', ts at time zone 'UTC')::date, 'l',
       substring(sha256(convert_to('api_calls' || E'\n' || q::text || E'\n' || (extract(epoch from ts) * 1000)::bigint::text, 'UTF8')) from 1 for 16),
       'api_calls', q, left(replace(c.id::text, '-', ''), 8) || '-' || lpad(g::text, 11, '0')
  from (select gen_random_uuid() as id from generate_series(1, 100)) c
  cross join lateral (select g, timestamptz '2026-10-01' + (g * interval '1 second' * 30 * 86400 / 20000) + (random() * interval '1 second') as ts, (1 + (g % 3))::numeric as q
                        from generate_series(1, 20000) g) e;
create unique index on ev_raw (customer_id, idempotency_key, occurred_month);
create index on ev_raw (customer_id, occurred_at);
create index on ev_raw using brin (occurred_at);
vacuum analyze ev_raw;
select 'raw (indexes built once, as settled)' as form, count(*) as events, pg_total_relation_size('ev_raw') as bytes, round(pg_total_relation_size('ev_raw')::numeric / count(*), 1) as bytes_an_event from ev_raw;

-- One row per customer, UTC day and metric: the day's events as arrays in time order (TOAST compresses them).
create table ev_packed (customer_id uuid not null, day date not null, metric text not null, occurred_month date not null, events int not null,
  ids uuid[] not null, ms int[] not null, quantities numeric[] not null, keys text[] not null, hashes bytea not null, states text not null,
  primary key (customer_id, day, metric));
insert into ev_packed
select customer_id, (occurred_at at time zone 'UTC')::date as day, metric, occurred_month, count(*),
       array_agg(id order by occurred_at, id),
       array_agg((extract(epoch from occurred_at - ((occurred_at at time zone 'UTC')::date::timestamp at time zone 'UTC')) * 1000)::int order by occurred_at, id),
       array_agg(quantity order by occurred_at, id),
       array_agg(idempotency_key order by occurred_at, id),
       string_agg(request_hash, ''::bytea order by occurred_at, id),
       string_agg(state, '' order by occurred_at, id)
  from ev_raw group by 1, 2, 3, 4;
create index on ev_packed (day);
vacuum analyze ev_packed;
select 'packed (customer, day, metric)' as form, sum(events) as events, pg_total_relation_size('ev_packed') as bytes, round(pg_total_relation_size('ev_packed')::numeric / sum(events), 1) as bytes_an_event from ev_packed;
select pg_relation_size('ev_packed') as heap, pg_total_relation_size('ev_packed') - pg_relation_size('ev_packed') - pg_indexes_size('ev_packed') as toast,
       pg_indexes_size('ev_packed') as indexes, avg(events)::int as events_a_row from ev_packed;
select pg_relation_size('ev_raw') as heap, pg_indexes_size('ev_raw') as indexes from ev_raw limit 1;
select pg_column_compression(ids) as ids, pg_column_compression(keys) as keys, pg_column_compression(hashes) as hashes, pg_column_compression(quantities) as q from ev_packed limit 1;
-- A late retry's lookup in a packed month: the day's row, its keys searched.
explain (analyze, buffers, costs off) select 1 from ev_packed p where p.customer_id = (select customer_id from ev_raw limit 1) and p.day = date '2026-10-15' and p.metric = 'api_calls' and 'x-00000010000' = any(p.keys);
-- The ragged end of the all-customer report on a packed day: every customer's row of the day, unnested.
explain (analyze, buffers, costs off) select sum(q) from ev_packed p, unnest(p.quantities, p.ms) as u(q, ms) where p.day = date '2026-10-15' and u.ms >= 12 * 3600 * 1000;
