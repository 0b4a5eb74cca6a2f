import type { Knex } from 'knex';

/**
 * usage_events becomes a table partitioned by month of occurrence (docs/decisions/usage-partitions.md),
 * converted online: the service keeps ingesting and forwarding while the rows are copied, and the
 * only exclusive lock is the final swap (a count check, a drop and renames: well under a second for
 * 2M rows, measured in docs/SCALING.md).
 *
 * 1. usage_events_next is created, partitioned by occurred_month (the first day of occurred_at's UTC
 *    month), with one partition per month from the oldest event to three months ahead and a default
 *    partition for strays. Its rows are leaner and never updated on the hot path: the forwarding
 *    columns move to usage_outbox (an event's row there lives from its write until a day after Stripe
 *    took it), received_at is the time in the UUIDv7 id, the fingerprint is 16 bytes rather than 32
 *    hex characters, and of the indexes only the idempotency key and (customer_id, occurred_at) stay
 *    (a BRIN index serves the all-customer edges; docs/SCALING.md has the measurements).
 * 2. A trigger on the old table repeats every insert, update and delete into the new ones (the event,
 *    and its outbox row while it is pending or failed), so nothing written during the copy is missed.
 * 3. The old rows are copied in batches of 10,000 in id order, each batch locking its rows (FOR SHARE)
 *    so a concurrent update cannot be overtaken by an older copy; every copy is an upsert of the
 *    latest values, so the trigger and the copy may meet on a row in either order.
 * 4. The swap: under an exclusive lock, the row counts must match (or the migration stops and leaves
 *    the old table in place), the old table is dropped and the new one takes its names.
 *
 * Not in a transaction (knex's `transaction: false`), so the copy does not hold its locks to the end.
 * If it stops half way it can simply run again: step 1 starts from scratch. Instances of the previous
 * release write without occurred_month, so they must be stopped before the swap (the usual deploy:
 * migrate, then start the new release); a write they make after the swap fails and is retried by its
 * client.
 */
export const config = { transaction: false };

const MONTH_FN = `
  create or replace function usage_month(ts timestamptz) returns date language sql immutable parallel safe as
  $fn$ select date_trunc('month', ts at time zone 'UTC')::date $fn$`;

/** The time in a UUIDv7 (its first 48 bits, Unix milliseconds): an event's receipt. */
const UUID_TIME_FN = `
  create or replace function usage_uuid_time(id uuid) returns timestamptz language sql immutable parallel safe as
  $fn$ select to_timestamp(('x' || lpad(substr(replace(id::text, '-', ''), 1, 12), 16, '0'))::bit(64)::bigint / 1000.0) $fn$`;

/**
 * The events themselves, written once and never updated on the hot path: the columns ordered to leave
 * no padding (8-byte time, 16-byte ids, then the smaller and variable ones). received_at is not
 * stored: it is the time in the id (a UUIDv7 made at receipt, usage_uuid_time()). state says where
 * the event goes: s (to Stripe, through usage_outbox until sent), l (local: Stripe off or the customer
 * has no Stripe customer), t (late usage, billed by a true-up).
 */
const CREATE_NEXT = `
  create table usage_events_next (
    occurred_at timestamptz not null,
    id uuid not null,
    customer_id uuid not null,
    occurred_month date not null,
    state char(1) not null,
    request_hash bytea not null,
    metric text not null,
    quantity numeric(20,6) not null,
    idempotency_key text not null,
    constraint usage_events_next_month check (occurred_month = usage_month(occurred_at)),
    constraint usage_events_next_quantity check (quantity >= 0),
    constraint usage_events_next_state check (state in ('s', 'l', 't')),
    constraint usage_events_next_request_hash check (octet_length(request_hash) = 16),
    constraint usage_events_next_idempotency unique (customer_id, idempotency_key, occurred_month),
    constraint usage_events_next_customer foreign key (customer_id) references customers (id) on delete restrict
  ) partition by range (occurred_month)`;

const INDEXES = [
  'create index usage_events_next_customer_occurred on usage_events_next (customer_id, occurred_at)',
  'create index usage_events_next_occurred_brin on usage_events_next using brin (occurred_at)',
];

/**
 * The outbox towards Stripe: an event's forwarding, from its write until a day after Stripe took it
 * (Stripe may still reject it then, by its error reports). Small and hot; the events stay untouched.
 */
const CREATE_OUTBOX = `
  create table usage_outbox (
    occurred_at timestamptz not null,
    created_at timestamptz not null default now(),
    next_attempt_at timestamptz,
    sent_at timestamptz,
    id uuid not null,
    customer_id uuid not null,
    stripe_submission_id uuid,
    occurred_month date not null,
    attempts smallint not null default 0,
    state text not null,
    metric text not null,
    quantity numeric(20,6) not null,
    idempotency_key text not null,
    last_error text,
    constraint usage_outbox_pkey primary key (customer_id, id),
    constraint usage_outbox_state check (state in ('pending', 'sent', 'failed')),
    constraint usage_outbox_customer_id_foreign foreign key (customer_id) references customers (id) on delete restrict
  )`;

const OUTBOX_INDEXES = [
  'create index usage_outbox_id on usage_outbox (id)',
  `create index usage_outbox_due on usage_outbox (next_attempt_at) where state = 'pending'`,
  `create index usage_outbox_failed on usage_outbox (id) where state = 'failed'`,
  `create index usage_outbox_sent on usage_outbox (sent_at) where state = 'sent'`,
  'create index usage_outbox_month on usage_outbox (occurred_month)',
];

/** The names the new table's constraints and indexes take once the old ones are gone. */
const RENAMES: [string, string, 'constraint' | 'index'][] = [
  ['usage_events_next_month', 'usage_events_month', 'constraint'],
  ['usage_events_next_quantity', 'usage_events_quantity_check', 'constraint'],
  ['usage_events_next_state', 'usage_events_state_check', 'constraint'],
  ['usage_events_next_request_hash', 'usage_events_request_hash', 'constraint'],
  ['usage_events_next_idempotency', 'usage_events_customer_idempotency_unique', 'constraint'],
  ['usage_events_next_customer', 'usage_events_customer_id_foreign', 'constraint'],
  ['usage_events_next_customer_occurred', 'usage_events_customer_occurred_idx', 'index'],
  ['usage_events_next_occurred_brin', 'usage_events_occurred_brin', 'index'],
];

const COLUMNS = 'occurred_at, id, customer_id, occurred_month, state, request_hash, metric, quantity, idempotency_key';
const EVENT_STATE = (r: string) => `case ${r}.state when 'local' then 'l' when 'late' then 't' else 's' end::char(1)`;
const FROM_OLD = (r: string) =>
  `${r}.occurred_at, ${r}.id, ${r}.customer_id, usage_month(${r}.occurred_at), ${EVENT_STATE(r)}, decode(${r}.request_hash, 'hex'), ${r}.metric, ${r}.quantity, ${r}.idempotency_key`;
const UPSERT_TAIL = `on conflict (customer_id, idempotency_key, occurred_month) do update set
  occurred_at = excluded.occurred_at, id = excluded.id, state = excluded.state, request_hash = excluded.request_hash,
  metric = excluded.metric, quantity = excluded.quantity`;
const OUTBOX_COLUMNS =
  'occurred_at, created_at, next_attempt_at, sent_at, id, customer_id, stripe_submission_id, occurred_month, attempts, state, metric, quantity, idempotency_key, last_error';
const OUTBOX_FROM_OLD = (r: string) =>
  `${r}.occurred_at, ${r}.received_at, ${r}.next_attempt_at, ${r}.sent_at, ${r}.id, ${r}.customer_id, ${r}.stripe_submission_id, usage_month(${r}.occurred_at), least(${r}.attempts, 32767)::smallint, ${r}.state, ${r}.metric, ${r}.quantity, ${r}.idempotency_key, ${r}.last_error`;
const OUTBOX_UPSERT_TAIL = `on conflict (customer_id, id) do update set
  next_attempt_at = excluded.next_attempt_at, sent_at = excluded.sent_at, stripe_submission_id = excluded.stripe_submission_id,
  attempts = excluded.attempts, state = excluded.state, last_error = excluded.last_error`;
/** Old rows still to forward (pending, failed) have an outbox row; the others none. */
const OUTBOX_STATES = `('pending', 'failed')`;

const SYNC_FN = `
  create or replace function usage_events_copy_sync() returns trigger language plpgsql as $fn$
  begin
    if tg_op in ('DELETE', 'UPDATE') then
      delete from usage_outbox where customer_id = old.customer_id and id = old.id;
      if tg_op = 'DELETE' or (old.customer_id, old.idempotency_key, usage_month(old.occurred_at)) is distinct from (new.customer_id, new.idempotency_key, usage_month(new.occurred_at)) then
        delete from usage_events_next where customer_id = old.customer_id and idempotency_key = old.idempotency_key and occurred_month = usage_month(old.occurred_at);
      end if;
      if tg_op = 'DELETE' then return null; end if;
    end if;
    insert into usage_events_next (${COLUMNS}) select ${FROM_OLD('new')} ${UPSERT_TAIL};
    if new.state in ${OUTBOX_STATES} then
      insert into usage_outbox (${OUTBOX_COLUMNS}) select ${OUTBOX_FROM_OLD('new')} ${OUTBOX_UPSERT_TAIL};
    end if;
    return null;
  end
  $fn$`;

/** A partition usage_events_YYYY_MM of `table` per month from `from` to `to` (first days), both included. */
async function createMonths(knex: Knex, table: string, from: string, to: string): Promise<void> {
  const { rows } = await knex.raw<{ rows: { name: string; lo: string; hi: string }[] }>(
    `select 'usage_events_' || to_char(m, 'YYYY_MM') as name, to_char(m, 'YYYY-MM-DD') as lo, to_char(m + interval '1 month', 'YYYY-MM-DD') as hi
       from generate_series(?::date, ?::date, interval '1 month') as m`,
    [from, to],
  );
  for (const r of rows) await knex.raw(`create table if not exists ?? partition of ?? for values from ('${r.lo}') to ('${r.hi}')`, [r.name, table]);
}

const isPartitioned = async (knex: Knex, table: string) =>
  (await knex.raw<{ rows: unknown[] }>(`select 1 from pg_class where relname = ? and relkind = 'p'`, [table])).rows.length > 0;

export async function up(knex: Knex): Promise<void> {
  if (await isPartitioned(knex, 'usage_events')) return;
  // 1. A fresh start: anything a stopped run left behind goes.
  await knex.raw('drop trigger if exists usage_events_copy_sync on usage_events');
  await knex.raw('drop function if exists usage_events_copy_sync()');
  await knex.raw('drop table if exists usage_events_next cascade');
  await knex.raw('drop table if exists usage_outbox cascade');
  await knex.raw(MONTH_FN);
  await knex.raw(UUID_TIME_FN);
  const {
    rows: [span],
  } = await knex.raw<{ rows: { first: string }[] }>(
    // From the oldest event, or the oldest month POST /api/usage still takes (35 days back), whichever is older.
    `select to_char(least(usage_month((select min(occurred_at) from usage_events)), usage_month(now() - interval '35 days')), 'YYYY-MM-DD') as first`,
  );
  const ahead = await knex.raw<{ rows: { last: string }[] }>(`select to_char(usage_month(now() + interval '3 months'), 'YYYY-MM-DD') as last`);
  await knex.transaction(async (trx) => {
    await trx.raw(CREATE_NEXT);
    for (const sql of INDEXES) await trx.raw(sql);
    await trx.raw(CREATE_OUTBOX);
    for (const sql of OUTBOX_INDEXES) await trx.raw(sql);
    await trx.raw('create table usage_events_default partition of usage_events_next default');
    await createMonths(trx, 'usage_events_next', span!.first, ahead.rows[0]!.last);
    // 2. From here every change to the old table is repeated in the new one.
    await trx.raw(SYNC_FN);
    await trx.raw('create trigger usage_events_copy_sync after insert or update or delete on usage_events for each row execute function usage_events_copy_sync()');
  });

  // 3. The rows already there, in batches, each its own transaction.
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    const { rows } = await withRetry(() =>
      knex.raw<{ rows: { last: string | null; n: number }[] }>(
        `with batch as (select * from usage_events where id > ?::uuid order by id limit 10000 for share),
              copied as (insert into usage_events_next (${COLUMNS}) select ${FROM_OLD('b')} from batch b ${UPSERT_TAIL} returning 1),
              queued as (insert into usage_outbox (${OUTBOX_COLUMNS}) select ${OUTBOX_FROM_OLD('b')} from batch b where b.state in ${OUTBOX_STATES} ${OUTBOX_UPSERT_TAIL} returning 1)
         select (select id::text from batch order by id desc limit 1) as last, (select count(*)::int from copied) + (select count(*)::int from queued) as n`,
        [after],
      ),
    );
    if (rows[0]!.last === null) break;
    after = rows[0]!.last;
  }

  // 4. The swap, under an exclusive lock for as short as it takes.
  await withRetry(() =>
    knex.transaction(async (trx) => {
      await trx.raw(`set local lock_timeout = '5s'`);
      await trx.raw('lock table usage_events in access exclusive mode');
      const {
        rows: [n],
      } = await trx.raw<{ rows: { old: string; next: string; old_queued: string; queued: string }[] }>(
        `select (select count(*) from usage_events)::text as old, (select count(*) from usage_events_next)::text as next,
                (select count(*) from usage_events where state in ${OUTBOX_STATES})::text as old_queued, (select count(*) from usage_outbox)::text as queued`,
      );
      if (n!.old !== n!.next || n!.old_queued !== n!.queued)
        throw new Error(`usage_events conversion: ${n!.old} rows (${n!.old_queued} to forward) in the old table, ${n!.next} (${n!.queued}) copied; nothing was swapped`);
      await trx.raw('drop table usage_events');
      await trx.raw('drop function usage_events_copy_sync()');
      await trx.raw('alter table usage_events_next rename to usage_events');
      for (const [from, to, kind] of RENAMES) {
        if (kind === 'constraint') await trx.raw(`alter table usage_events rename constraint ${from} to ${to}`);
        else await trx.raw(`alter index ${from} rename to ${to}`);
      }
    }),
  );
}

/** A batch or the swap that met a deadlock or a lock timeout against the running service is tried again. */
async function withRetry<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (attempt >= 20 || (code !== '40P01' && code !== '55P03' && code !== '40001')) throw err;
      await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
}

/** Back to one plain table, in one transaction (the way back is for development, not for a live service). */
export async function down(knex: Knex): Promise<void> {
  if (!(await isPartitioned(knex, 'usage_events'))) return;
  await knex.transaction(async (trx) => {
    await trx.raw('lock table usage_events, usage_outbox in access exclusive mode');
    await trx.raw(`
      create table usage_events_plain (
        id uuid primary key,
        customer_id uuid not null references customers (id) on delete restrict,
        metric text not null,
        quantity numeric(20,6) not null check (quantity >= 0),
        occurred_at timestamptz not null,
        idempotency_key text not null,
        request_hash text not null,
        received_at timestamptz not null default current_timestamp,
        state text not null check (state in ('pending', 'sent', 'failed', 'local', 'late')),
        attempts integer not null default 0,
        next_attempt_at timestamptz,
        last_error text,
        sent_at timestamptz,
        stripe_submission_id uuid
      )`);
    // The outbox gives back the forwarding columns of the events still in it; the others were sent
    // (or are local or late) and their attempts, errors and sent times were not kept.
    await trx.raw(`
      insert into usage_events_plain (id, customer_id, metric, quantity, occurred_at, idempotency_key, request_hash, received_at, state, attempts, next_attempt_at, last_error, sent_at, stripe_submission_id)
      select e.id, e.customer_id, e.metric, e.quantity, e.occurred_at, e.idempotency_key, encode(e.request_hash, 'hex'), usage_uuid_time(e.id),
             coalesce(o.state, case e.state when 'l' then 'local' when 't' then 'late' else 'sent' end), coalesce(o.attempts, 0),
             o.next_attempt_at, o.last_error, o.sent_at, o.stripe_submission_id
        from usage_events e left join usage_outbox o on o.customer_id = e.customer_id and o.id = e.id`);
    await trx.raw('drop table usage_events');
    await trx.raw('drop table usage_outbox');
    await trx.raw('drop function usage_month(timestamptz)');
    await trx.raw('drop function usage_uuid_time(uuid)');
    await trx.raw('alter table usage_events_plain rename to usage_events');
    await trx.raw('alter table usage_events rename constraint usage_events_plain_pkey to usage_events_pkey');
    await trx.raw('alter table usage_events rename constraint usage_events_plain_customer_id_fkey to usage_events_customer_id_foreign');
    await trx.raw('alter table usage_events rename constraint usage_events_plain_quantity_check to usage_events_quantity_check');
    await trx.raw('alter table usage_events rename constraint usage_events_plain_state_check to usage_events_state_check');
    await trx.raw('alter table usage_events add constraint usage_events_customer_idempotency_unique unique (customer_id, idempotency_key)');
    await trx.raw('create index usage_events_customer_occurred_idx on usage_events (customer_id, occurred_at)');
    await trx.raw('create index usage_events_occurred_idx on usage_events (occurred_at)');
    await trx.raw(`create index usage_events_due_idx on usage_events (next_attempt_at) where state = 'pending'`);
    await trx.raw(`create index usage_events_failed_idx on usage_events (id) where state = 'failed'`);
  });
}
