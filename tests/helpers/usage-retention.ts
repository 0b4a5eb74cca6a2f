import { randomBytes, randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import pino from 'pino';
import type { TestApp } from './test-app';
import { createUsageRetentionRepository } from '../../src/modules/usage-retention/usage-retention-repository';
import type { UsageRetentionDeps } from '../../src/modules/usage-retention/usage-retention-service';
import type { ArchivedEvent } from '../../src/modules/usage-retention/archive-files';

/** An archived event of `customerId` at `at` (an archive's timestamp form), local, with a fresh id and key. */
export function archivedEvent(customerId: string, at: string, over: Partial<ArchivedEvent> = {}): ArchivedEvent {
  return {
    id: randomUUID(),
    customer_id: customerId,
    metric: 'api_calls',
    quantity: '1.5',
    occurred_at: at,
    idempotency_key: `archived-${randomBytes(6).toString('hex')}`,
    request_hash: randomBytes(16).toString('hex'),
    received_at: at,
    state: 'local',
    ...over,
  };
}

/** '2024-01' -> ['2024-01-01', '2024-02-01']. */
export function bounds(month: string): [string, string] {
  const [y, m] = month.split('-').map(Number) as [number, number];
  return [`${month}-01`, new Date(Date.UTC(y, m, 1)).toISOString().slice(0, 10)];
}

/**
 * A far past month of usage written straight to the tables: its partition, `n` events of the
 * customers given (api_calls and storage_gb, quantities with decimals, times with microseconds),
 * spread evenly over its first 27 days (none before 03:00 on any day's first event), in `state`
 * (sent, local or late: the event's route; an event still to forward has a usage_outbox row too),
 * and their daily totals in usage_daily.
 */
export async function seedMonth(db: Knex, month: string, customers: string[], n: number, state = 'sent'): Promise<void> {
  const [from, to] = bounds(month);
  const table = `usage_events_${month.replace('-', '_')}`;
  await db.raw(`create table if not exists ?? partition of usage_events for values from ('${from}') to ('${to}')`, [table]);
  await db.raw(
    `insert into usage_events (id, customer_id, metric, quantity, occurred_at, occurred_month, idempotency_key, request_hash, state)
     select usage_uuidv7(), (?::uuid[])[1 + i % ?], case when i % 3 = 0 then 'storage_gb' else 'api_calls' end, ((i % 7) + 0.25)::numeric,
            x.ts, usage_month(x.ts), 'seed-' || ? || '-' || i, decode(md5(i::text || ?), 'hex'),
            case ?::text when 'local' then 'l' when 'late' then 't' else 's' end
       from generate_series(1, ?) as i,
            lateral (select ?::timestamptz + make_interval(secs => i * (27 * 86400.0 / ?)) + interval '0.000123 seconds' as ts) as x`,
    [`{${customers.join(',')}}`, customers.length, month, month, state, n, `${from}T00:00:00Z`, n],
  );
  await db.raw(
    `insert into usage_daily (customer_id, metric, day, shard, quantity, events)
     select customer_id, metric, (occurred_at at time zone 'UTC')::date, 0, sum(quantity), count(*) from ?? group by 1, 2, 3`,
    [table],
  );
}

/** The deps of a retention run on the test app's database: Stripe on, no wait before a detach. */
export function retentionDeps(t: TestApp, archiveDir: string | undefined, over: Partial<UsageRetentionDeps> = {}): UsageRetentionDeps {
  return {
    db: t.db,
    repo: createUsageRetentionRepository(),
    audit: t.c.audit,
    logger: pino({ level: 'silent' }),
    settings: { retentionMonths: 13, archiveDir, withoutArchive: false, stripeEnabled: true },
    settleMs: 0,
    ...over,
  };
}

/** Whether the month's table is there, and a partition of usage_events. */
export async function tableState(db: Knex, month: string): Promise<'attached' | 'detached' | 'gone'> {
  const { rows } = await db.raw<{ rows: { attached: boolean }[] }>(
    `select exists (select 1 from pg_inherits i where i.inhrelid = c.oid) as attached from pg_class c where c.relname = ? and c.relkind = 'r'`,
    [`usage_events_${month.replace('-', '_')}`],
  );
  return rows.length === 0 ? 'gone' : rows[0]!.attached ? 'attached' : 'detached';
}

/** Every usage_daily total of the month, per customer, metric and day, in a stable order. */
export async function dailyOf(db: Knex, month: string) {
  const [from, to] = bounds(month);
  const { rows } = await db.raw(
    `select customer_id, metric, day::text, sum(quantity)::text as quantity, sum(events)::int as events from usage_daily
      where day >= ? and day < ? group by 1, 2, 3 order by 1, 2, 3`,
    [from, to],
  );
  return rows as unknown[];
}
