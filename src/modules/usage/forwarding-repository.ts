import type { Knex } from 'knex';
import type { CustomerRow, UsageOutboxRow } from '../../db/tables';
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
  /** Seconds since the oldest pending event was received; 0 when none is pending. */
  oldestPendingAgeSeconds: number;
  /** Events marked sent in the last 60 seconds (all instances). */
  sentLastMinute: number;
}

export interface Backlog {
  pending: number;
  due: number;
  failed: number;
  oldestPendingAt: Date | null;
  oldestPendingSeconds: number;
}

/** An event Stripe rejected after accepting it on the stream (error report webhook). */
export interface Rejection {
  id: string;
  error: string;
}

export interface FailedEvent {
  id: string;
  customerId: string;
  metric: string;
  quantity: string;
  occurredAt: Date;
  attempts: number;
  lastError: string | null;
  /** The Stripe call that last carried it (stream mode). */
  stripeSubmissionId: string | null;
}

/** A usage event just marked failed, as a usage.forwarding_failed event tells of it. */
export interface FailedUsageEvent {
  id: string;
  customerId: string;
  metric: string;
  lastError: string | null;
}

/** A claimed event with its customer's Stripe id; quantity as text (trimmed here). */
type ClaimedRow = Pick<UsageOutboxRow, 'id' | 'customer_id' | 'metric' | 'quantity' | 'occurred_at' | 'attempts'> & Pick<CustomerRow, 'stripe_customer_id'>;
type StatsRow = Pick<ForwardingStats, 'pending' | 'due' | 'failed' | 'local' | 'sent'> & {
  oldest_pending_at: Date | null;
  oldest_pending_age_seconds: number;
  sent_last_minute: number;
};

/** How long an outbox row stays once Stripe took its event: Stripe's error reports may still reject it. */
export const SENT_KEPT_HOURS = 24;

/**
 * The forwarding of usage events to Stripe, on usage_outbox (20261208000000): one row per event from
 * its write until SENT_KEPT_HOURS after Stripe took it. The events themselves (usage_events) are never
 * updated here but for the rare event made local or late.
 */
export function createForwardingRepository() {
  return {
    /**
     * Claims due events by leasing them: next_attempt_at moves past the lease, in a short
     * transaction, so no row lock is held while Stripe is called. SKIP LOCKED lets any number
     * of workers claim at once without taking the same row; a crashed worker's lease expires
     * (it is short, and renewed by extendLeases while the events are held).
     */
    async claim(db: Knex, limit: number, leaseSeconds: number): Promise<ClaimedEvent[]> {
      const { rows }: { rows: ClaimedRow[] } = await db.raw(
        `update usage_outbox e
            set next_attempt_at = now() + make_interval(secs => ?), attempts = e.attempts + 1
           from (select customer_id, id from usage_outbox
                  where state = 'pending' and next_attempt_at <= now()
                  order by next_attempt_at
                  limit ? for update skip locked) due,
                customers c
          where e.customer_id = due.customer_id and e.id = due.id and c.id = e.customer_id
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

    /** Renews the lease of events still pending, in one statement: due again leaseSeconds from now. */
    async extendLeases(db: Knex, ids: string[], leaseSeconds: number): Promise<void> {
      if (ids.length === 0) return;
      await db.raw(`update usage_outbox set next_attempt_at = now() + make_interval(secs => ?) where id = any(?::uuid[]) and state = 'pending'`, [
        leaseSeconds,
        ids,
      ]);
    },

    async markSent(db: Knex, ids: string[]): Promise<void> {
      if (ids.length === 0) return;
      await db('usage_outbox')
        .whereIn('id', ids)
        .where({ state: 'pending' })
        .update({ state: 'sent', sent_at: db.fn.now(), next_attempt_at: null, last_error: null });
    },

    /** The events one Stripe call carried, in one statement: sent, and by which submission. */
    async markSentBy(db: Knex, ids: string[], submissionId: string): Promise<number> {
      if (ids.length === 0) return 0;
      return db('usage_outbox')
        .whereIn('id', ids)
        .where({ state: 'pending' })
        .update({ state: 'sent', sent_at: db.fn.now(), next_attempt_at: null, last_error: null, stripe_submission_id: submissionId });
    },

    /**
     * A call that may succeed later, in one statement: each event is due again after its own backoff
     * (equal jitter over min(max, base * 2^(attempts-1))), or parked as failed at maxAttempts.
     */
    async retryOrFail(
      db: Knex,
      ids: string[],
      submissionId: string,
      error: string,
      policy: { backoffBaseMs: number; backoffMaxMs: number; maxAttempts: number },
    ): Promise<{ retried: number; failed: number; failedIds: string[] }> {
      if (ids.length === 0) return { retried: 0, failed: 0, failedIds: [] };
      const { rows }: { rows: { id: string; state: string }[] } = await db.raw(
        `update usage_outbox
            set state = case when attempts >= :max then 'failed' else state end,
                next_attempt_at = case when attempts >= :max then null else
                  now() + make_interval(secs => least(:cap::float8, :base::float8 * 2 ^ (greatest(attempts, 1) - 1)) * (0.5 + random() / 2) / 1000) end,
                last_error = :error, stripe_submission_id = :submission
          where id = any(:ids::uuid[]) and state = 'pending'
      returning id, state`,
        { max: policy.maxAttempts, cap: policy.backoffMaxMs, base: policy.backoffBaseMs, error, submission: submissionId, ids },
      );
      const failedIds = rows.filter((r) => r.state === 'failed').map((r) => r.id);
      return { retried: rows.length - failedIds.length, failed: failedIds.length, failedIds };
    },

    /** A call Stripe refused for good (a 4xx), in one statement. Returns the ids it failed. */
    async failMany(db: Knex, ids: string[], submissionId: string | null, error: string): Promise<string[]> {
      if (ids.length === 0) return [];
      const rows = await db('usage_outbox')
        .whereIn('id', ids)
        .where({ state: 'pending' })
        .update({ state: 'failed', next_attempt_at: null, last_error: error, stripe_submission_id: submissionId }, ['id']);
      return rows.map((r) => r.id);
    },

    /** Who each event belongs to and its last error: what a usage.forwarding_failed event tells. */
    async describe(db: Knex, ids: readonly string[]): Promise<FailedUsageEvent[]> {
      if (ids.length === 0) return [];
      const rows = await db('usage_outbox')
        .select('id', 'customer_id', 'metric', 'last_error')
        .whereIn('id', [...ids]);
      return rows.map((r) => ({ id: r.id, customerId: r.customer_id, metric: r.metric, lastError: r.last_error }));
    },

    /**
     * Events Stripe accepted on the stream and rejected when it validated them: failed, with Stripe's
     * reason, whether we had marked them sent yet or not. Returns the ids changed.
     */
    async markRejected(db: Knex, rejections: Rejection[]): Promise<string[]> {
      if (rejections.length === 0) return [];
      const { rows }: { rows: { id: string }[] } = await db.raw(
        `update usage_outbox e
            set state = 'failed', next_attempt_at = null, last_error = r.error, sent_at = null
           from unnest(?::uuid[], ?::text[]) as r(id, error)
          where e.id = r.id and e.state in ('pending', 'sent')
      returning e.id`,
        [rejections.map((r) => r.id), rejections.map((r) => r.error)],
      );
      return rows.map((r) => r.id);
    },

    /**
     * Events whose customer has no Stripe customer: local. Their outbox rows go, and the events say
     * so (the one update of an event here). The worker counts them in its run summary (`local`).
     */
    async markLocal(db: Knex, ids: string[]): Promise<void> {
      if (ids.length === 0) return;
      await db.raw(
        `with gone as (delete from usage_outbox where id = any(?::uuid[]) and state = 'pending' returning customer_id, idempotency_key, occurred_month)
         update usage_events e set state = 'l'
           from gone g
          where e.customer_id = g.customer_id and e.idempotency_key = g.idempotency_key and e.occurred_month = g.occurred_month`,
        [ids],
      );
    },

    /** Returns whether it failed it (it was still pending). */
    async markFailed(db: Knex, id: string, error: string): Promise<boolean> {
      return (await db('usage_outbox').where({ id, state: 'pending' }).update({ state: 'failed', next_attempt_at: null, last_error: error })) > 0;
    },

    async scheduleRetry(db: Knex, id: string, delayMs: number, error: string): Promise<void> {
      await db('usage_outbox')
        .where({ id, state: 'pending' })
        .update({ next_attempt_at: db.raw('now() + make_interval(secs => ?)', [delayMs / 1000]), last_error: error });
    },

    /** Gives back claimed events that were not attempted (shutdown): due now, the attempt not counted. */
    async release(db: Knex, ids: string[]): Promise<void> {
      if (ids.length === 0) return;
      await db('usage_outbox')
        .whereIn('id', ids)
        .where({ state: 'pending' })
        .update({ next_attempt_at: db.fn.now(), attempts: db.raw('greatest(attempts - 1, 0)') });
    },

    async stats(db: Knex): Promise<ForwardingStats> {
      // The queue from the outbox; local and sent are counts over the events (every partition, and the packs' counts).
      const { rows }: { rows: [StatsRow] } = await db.raw(
        `with q as (
           select count(*) filter (where state = 'pending')::int as pending,
                  count(*) filter (where state = 'pending' and next_attempt_at <= now())::int as due,
                  count(*) filter (where state = 'failed')::int as failed,
                  min(created_at) filter (where state = 'pending') as oldest_pending_at,
                  count(*) filter (where state = 'sent' and sent_at > now() - interval '1 minute')::int as sent_last_minute
             from usage_outbox
         ), e as (
           select (select count(*) filter (where state = 'l') from usage_events) + (select coalesce(sum(local), 0) from usage_event_packs) as local,
                  (select count(*) filter (where state = 's') from usage_events) + (select coalesce(sum(routed), 0) from usage_event_packs) as routed
         )
         select q.pending, q.due, q.failed, e.local::int, (e.routed - q.pending - q.failed)::int as sent, q.oldest_pending_at,
                coalesce(extract(epoch from now() - q.oldest_pending_at), 0)::float8 as oldest_pending_age_seconds, q.sent_last_minute
           from q, e`,
      );
      const r = rows[0];
      return {
        pending: r.pending,
        due: r.due,
        failed: r.failed,
        local: r.local,
        sent: r.sent,
        oldestPendingAt: r.oldest_pending_at,
        oldestPendingAgeSeconds: Math.max(0, r.oldest_pending_age_seconds),
        sentLastMinute: r.sent_last_minute,
      };
    },

    /** Only what the partial indexes answer cheaply: fit to run on every Prometheus scrape. */
    async backlog(db: Knex): Promise<Backlog> {
      // The pending count already visits every pending row: the oldest one's age comes with it.
      const { rows }: { rows: [{ pending: number; due: number; failed: number; oldest_pending_at: Date | null; oldest_pending_seconds: number }] } =
        await db.raw(
          `select p.pending, p.oldest_pending_at, p.oldest_pending_seconds,
           (select count(*)::int from usage_outbox where state = 'pending' and next_attempt_at <= now()) as due,
           (select count(*)::int from usage_outbox where state = 'failed') as failed
         from (select count(*)::int as pending, min(created_at) as oldest_pending_at,
                      coalesce(extract(epoch from now() - min(created_at)), 0)::float8 as oldest_pending_seconds
                 from usage_outbox where state = 'pending') p`,
        );
      const r = rows[0];
      return {
        pending: r.pending,
        due: r.due,
        failed: r.failed,
        oldestPendingAt: r.oldest_pending_at,
        oldestPendingSeconds: Math.max(0, r.oldest_pending_seconds),
      };
    },

    async listFailed(db: Knex, limit: number): Promise<FailedEvent[]> {
      // numeric comes back as its exact text (see db/knex.ts).
      const rows = await db('usage_outbox')
        .select('id', 'customer_id', 'metric', 'quantity', 'occurred_at', 'attempts', 'last_error', 'stripe_submission_id')
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
        stripeSubmissionId: r.stripe_submission_id,
      }));
    },

    /** Outbox rows of events Stripe took more than SENT_KEPT_HOURS ago, at most `limit` of them. Returns how many went. */
    async purgeSent(db: Knex, limit: number): Promise<number> {
      const { rowCount } = await db.raw<{ rowCount: number }>(
        `delete from usage_outbox where ctid = any(array(
           select ctid from usage_outbox where state = 'sent' and sent_at < now() - make_interval(hours => ?) limit ?))`,
        [SENT_KEPT_HOURS, limit],
      );
      return rowCount;
    },

    /** Puts failed events back in the queue with a fresh budget of attempts. */
    async requeueFailed(db: Knex, ids: string[] | null): Promise<string[]> {
      const q = db('usage_outbox').where({ state: 'failed' });
      if (ids) q.whereIn('id', ids);
      const rows = await q.update({ state: 'pending', attempts: 0, next_attempt_at: db.fn.now() }, ['id']);
      return rows.map((r) => r.id);
    },
  };
}

export type ForwardingRepository = ReturnType<typeof createForwardingRepository>;
