import type { Knex } from 'knex';

/**
 * Single events and batches are now written by one statement in the usage repository, which
 * computes the request fingerprint and decides replay or conflict: the batch function and its
 * fingerprint function (the same rule written a second time, in PL/pgSQL) go. `down` restores them.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('drop function ingest_usage_batch(uuid, text[], text[], bigint[], text[], text)');
  await knex.raw('drop function usage_request_hash(text, text, bigint)');
}

export async function down(knex: Knex): Promise<void> {
  // The fingerprint of a usage request as given: the first 16 bytes of SHA-256 over
  // "metric\nquantity\noccurred_ms" (empty when occurred_at was not sent), in hex.
  // requestHash() in usage-service.ts computes the same in the application.
  await knex.raw(`
    create function usage_request_hash(p_metric text, p_quantity text, p_occurred_ms bigint) returns text
    language sql immutable as $fn$
      select encode(substring(sha256(convert_to(p_metric || E'\\n' || p_quantity || E'\\n' || coalesce(p_occurred_ms::text, ''), 'UTF8')) from 1 for 16), 'hex')
    $fn$`);

  // A batch of one customer's events in one round trip and one atomic statement: insert what is
  // new; if some keys were already there, look again with a fresh snapshot (so concurrent inserts
  // of the same keys are seen) and refuse the whole batch if any is stored with another body.
  // Raising rolls back the insert and the daily totals. Ids and fingerprints are made here, so
  // the request carries only what the customer sent; times travel as epoch milliseconds
  // (null: not given, so now).
  await knex.raw(`
    create function ingest_usage_batch(
      p_customer_id uuid, p_metrics text[], p_quantities text[], p_occurred_ms bigint[], p_keys text[], p_state text)
    returns table (id uuid, idempotency_key text, created boolean)
    language plpgsql volatile as $fn$
    #variable_conflict use_column
    declare
      inserted int;
    begin
      return query
      with input as (
        select t.metric, t.quantity, t.occurred_ms, t.idempotency_key,
               usage_request_hash(t.metric, t.quantity, t.occurred_ms) as request_hash
          from unnest(p_metrics, p_quantities, p_occurred_ms, p_keys) as t(metric, quantity, occurred_ms, idempotency_key)
         order by t.idempotency_key
      ), ins as (
        insert into usage_events as e (id, customer_id, metric, quantity, occurred_at, idempotency_key, request_hash, state, next_attempt_at)
        select usage_uuidv7(), p_customer_id, i.metric, i.quantity::numeric,
               coalesce(timestamptz 'epoch' + i.occurred_ms * interval '1 millisecond', now()),
               i.idempotency_key, i.request_hash, p_state, case when p_state = 'pending' then now() end
          from input i
        on conflict on constraint usage_events_customer_idempotency_unique do nothing
        returning e.id, e.metric, e.quantity, e.occurred_at, e.idempotency_key
      ), roll as (
        insert into usage_daily as d (customer_id, metric, day, shard, quantity, events)
        select p_customer_id, ins.metric, (ins.occurred_at at time zone 'UTC')::date,
               coalesce(nullif(current_setting('billing.rollup_shard', true), ''), '0')::smallint,
               sum(ins.quantity), count(*)
          from ins group by 2, 3 order by 2, 3
        on conflict on constraint usage_daily_pkey do update
          set quantity = d.quantity + excluded.quantity, events = d.events + excluded.events
      )
      select ins.id, ins.idempotency_key, true from ins;

      get diagnostics inserted = row_count;
      if inserted = (select count(distinct k) from unnest(p_keys) as k) then
        return; -- every key was new: nothing to compare
      end if;

      if exists (
        select 1 from unnest(p_metrics, p_quantities, p_occurred_ms, p_keys) as k(metric, quantity, occurred_ms, idempotency_key)
          join usage_events e on e.customer_id = p_customer_id and e.idempotency_key = k.idempotency_key
         where e.request_hash <> usage_request_hash(k.metric, k.quantity, k.occurred_ms)
      ) then
        raise exception 'an idempotency key was already used with a different event' using errcode = 'BL409';
      end if;

      return query
      select e.id, e.idempotency_key, false
        from unnest(p_keys) as k(idempotency_key)
        join usage_events e on e.customer_id = p_customer_id and e.idempotency_key = k.idempotency_key
       where not (e.xmin = pg_current_xact_id()::xid);
    end
    $fn$`);
}
