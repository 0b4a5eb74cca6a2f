import type { Knex } from 'knex';
import type { CustomerRow, UsageEventRow } from '../../db/tables';
import { trimDecimal } from './quantity';

export interface ClaimedEvent {
  id: string;
  customerId: string;
  stripeCustomerId: string | null;
  metric: string;
  quantity: string;
  occurredAt: Date;
  /** Including this one. */
  attempts: number;
}

export interface ForwardingStats {
  pending: number;
  due: number;
  failed: number;
  local: number;
  sent: number;
  oldestPendingAt: Date | null;
}

export interface FailedEvent {
  id: string;
  customerId: string;
  metric: string;
  quantity: string;
  occurredAt: Date;
  attempts: number;
  lastError: string | null;
}

/** A claimed event with its customer's Stripe id; quantity as text (trimmed here). */
type ClaimedRow = Pick<UsageEventRow, 'id' | 'customer_id' | 'metric' | 'quantity' | 'occurred_at' | 'attempts'> & Pick<CustomerRow, 'stripe_customer_id'>;
type StatsRow = Pick<ForwardingStats, 'pending' | 'due' | 'failed' | 'local' | 'sent'> & { oldest_pending_at: Date | null };

export function createForwarderRepository() {
  return {
    /**
     * Claims due events by leasing them: next_attempt_at moves past the lease, in a short
     * transaction, so no row lock is held while Stripe is called. SKIP LOCKED lets any number
     * of workers claim at once without taking the same row; a crashed worker's lease expires.
     */
    async claim(db: Knex, limit: number, leaseSeconds: number): Promise<ClaimedEvent[]> {
      const { rows }: { rows: ClaimedRow[] } = await db.raw(
        `update usage_events e
            set next_attempt_at = now() + make_interval(secs => ?), attempts = e.attempts + 1
           from (select id from usage_events
                  where state = 'pending' and next_attempt_at <= now()
                  order by next_attempt_at
                  limit ? for update skip locked) due,
                customers c
          where e.id = due.id and c.id = e.customer_id
      returning e.id, e.customer_id, c.stripe_customer_id, e.metric, e.quantity::text as quantity, e.occurred_at, e.attempts`,
        [leaseSeconds, limit],
      );
      return rows.map((r) => ({
        id: r.id,
        customerId: r.customer_id,
        stripeCustomerId: r.stripe_customer_id,
        metric: r.metric,
        quantity: trimDecimal(r.quantity),
        occurredAt: r.occurred_at,
        attempts: r.attempts,
      }));
    },

    async markSent(db: Knex, ids: string[]): Promise<void> {
      if (ids.length === 0) return;
      await db('usage_events').whereIn('id', ids).where({ state: 'pending' })
        .update({ state: 'sent', sent_at: db.fn.now(), next_attempt_at: null, last_error: null });
    },

    async markLocal(db: Knex, ids: string[], reason: string): Promise<void> {
      if (ids.length === 0) return;
      await db('usage_events').whereIn('id', ids).where({ state: 'pending' })
        .update({ state: 'local', next_attempt_at: null, last_error: reason });
    },

    async markFailed(db: Knex, id: string, error: string): Promise<void> {
      await db('usage_events').where({ id, state: 'pending' }).update({ state: 'failed', next_attempt_at: null, last_error: error });
    },

    async scheduleRetry(db: Knex, id: string, delayMs: number, error: string): Promise<void> {
      await db('usage_events')
        .where({ id, state: 'pending' })
        .update({ next_attempt_at: db.raw('now() + make_interval(secs => ?)', [delayMs / 1000]), last_error: error });
    },

    /** Gives back claimed events that were not attempted (shutdown): due now, the attempt not counted. */
    async release(db: Knex, ids: string[]): Promise<void> {
      if (ids.length === 0) return;
      await db('usage_events')
        .whereIn('id', ids)
        .where({ state: 'pending' })
        .update({ next_attempt_at: db.fn.now(), attempts: db.raw('greatest(attempts - 1, 0)') });
    },

    async stats(db: Knex): Promise<ForwardingStats> {
      const { rows }: { rows: [StatsRow] } = await db.raw(
        `select
           count(*) filter (where state = 'pending')::int as pending,
           count(*) filter (where state = 'pending' and next_attempt_at <= now())::int as due,
           count(*) filter (where state = 'failed')::int as failed,
           count(*) filter (where state = 'local')::int as local,
           count(*) filter (where state = 'sent')::int as sent,
           min(received_at) filter (where state = 'pending') as oldest_pending_at
         from usage_events`,
      );
      const r = rows[0];
      return { pending: r.pending, due: r.due, failed: r.failed, local: r.local, sent: r.sent, oldestPendingAt: r.oldest_pending_at };
    },

    /** Only what the partial indexes answer cheaply: fit to run on every Prometheus scrape. */
    async backlog(db: Knex): Promise<{ pending: number; due: number; failed: number }> {
      const { rows }: { rows: [{ pending: number; due: number; failed: number }] } = await db.raw(
        `select
           (select count(*)::int from usage_events where state = 'pending') as pending,
           (select count(*)::int from usage_events where state = 'pending' and next_attempt_at <= now()) as due,
           (select count(*)::int from usage_events where state = 'failed') as failed`,
      );
      return rows[0];
    },

    async listFailed(db: Knex, limit: number): Promise<FailedEvent[]> {
      // numeric comes back as its exact text (see db/knex.ts).
      const rows = await db('usage_events')
        .select('id', 'customer_id', 'metric', 'quantity', 'occurred_at', 'attempts', 'last_error')
        .where({ state: 'failed' })
        .orderBy('id', 'desc')
        .limit(limit);
      return rows.map((r) => ({
        id: r.id,
        customerId: r.customer_id,
        metric: r.metric,
        quantity: trimDecimal(r.quantity),
        occurredAt: r.occurred_at,
        attempts: r.attempts,
        lastError: r.last_error,
      }));
    },

    /** Puts failed events back in the queue with a fresh budget of attempts. */
    async requeueFailed(db: Knex, ids: string[] | null): Promise<string[]> {
      const q = db('usage_events').where({ state: 'failed' });
      if (ids) q.whereIn('id', ids);
      const rows = await q.update({ state: 'pending', attempts: 0, next_attempt_at: db.fn.now() }, ['id']);
      return rows.map((r) => r.id);
    },
  };
}

export type ForwarderRepository = ReturnType<typeof createForwarderRepository>;
