import type { Knex } from 'knex';
import type { TrueUpState, UsageTrueUpRow } from '../../db/tables';
import { trimDecimal } from '../usage/quantity';

/** Late usage of one bundle and metric, billed as one invoice item (usage_true_ups). */
export interface TrueUp {
  id: string;
  customerId: string;
  bundleId: string;
  metric: string;
  /** Decimal string. */
  quantity: string;
  events: number;
  occurredFrom: Date;
  occurredTo: Date;
  state: TrueUpState;
  attempts: number;
  nextAttemptAt: Date | null;
  lastError: string | null;
  stripePriceId: string | null;
  stripeInvoiceItemId: string | null;
  createdAt: Date;
  sentAt: Date | null;
}

export const toTrueUp = (r: UsageTrueUpRow): TrueUp => ({
  id: r.id,
  customerId: r.customer_id,
  bundleId: r.bundle_id,
  metric: r.metric,
  quantity: trimDecimal(r.quantity),
  events: r.events,
  occurredFrom: r.occurred_from,
  occurredTo: r.occurred_to,
  state: r.state,
  attempts: r.attempts,
  nextAttemptAt: r.next_attempt_at,
  lastError: r.last_error,
  stripePriceId: r.stripe_price_id,
  stripeInvoiceItemId: r.stripe_invoice_item_id,
  createdAt: r.created_at,
  sentAt: r.sent_at,
});

/** A late event, as the bundle's write stored it. */
export interface LateEvent {
  metric: string;
  /** Decimal string. */
  quantity: string;
  occurredAt: Date;
}

/** What the report reads: every filter is optional; `createdFrom`/`createdTo` bound created_at, [from, to). */
export interface TrueUpFilter {
  customerId?: string;
  metric?: string;
  state?: TrueUpState;
  createdFrom?: Date;
  createdTo?: Date;
}

/** Late usage of one metric over a report's rows (every page, not one). */
export interface TrueUpTotal {
  metric: string;
  /** Decimal string. */
  quantity: string;
  events: number;
}

const filtered = (db: Knex, f: TrueUpFilter) => {
  const q = db('usage_true_ups');
  if (f.customerId) q.where('customer_id', f.customerId);
  if (f.metric) q.where('metric', f.metric);
  if (f.state) q.where('state', f.state);
  if (f.createdFrom) q.where('created_at', '>=', f.createdFrom);
  if (f.createdTo) q.where('created_at', '<', f.createdTo);
  return q;
};

export function createTrueUpsRepository() {
  return {
    /**
     * One true-up per metric of the late events of one bundle, in the caller's transaction: the sums
     * are PostgreSQL's (numeric, exact). A bundle's late events are recorded once: the row per
     * (customer, bundle, metric) is unique, and a second call adds nothing.
     */
    async insertForBundle(
      trx: Knex,
      input: { customerId: string; bundleId: string; state: TrueUpState; events: readonly LateEvent[]; ids: (metric: string) => string },
    ): Promise<TrueUp[]> {
      if (input.events.length === 0) return [];
      const metrics = [...new Set(input.events.map((e) => e.metric))].sort();
      const { rows } = await trx.raw<{ rows: UsageTrueUpRow[] }>(
        `insert into usage_true_ups (id, customer_id, bundle_id, metric, quantity, events, occurred_from, occurred_to, state, next_attempt_at)
         select m.id, ?::uuid, ?::uuid, e.metric, sum(e.quantity), count(*), min(e.occurred_at), max(e.occurred_at), ?::text,
                case when ?::text = 'pending' then now() end
           from unnest(?::text[], ?::numeric[], ?::timestamptz[]) as e(metric, quantity, occurred_at)
           join unnest(?::text[], ?::uuid[]) as m(metric, id) on m.metric = e.metric
          group by m.id, e.metric
          order by e.metric
         on conflict (customer_id, bundle_id, metric) do nothing
         returning *`,
        [
          input.customerId,
          input.bundleId,
          input.state,
          input.state,
          input.events.map((e) => e.metric),
          input.events.map((e) => e.quantity),
          input.events.map((e) => e.occurredAt.toISOString()),
          metrics,
          metrics.map(input.ids),
        ],
      );
      return rows.map(toTrueUp);
    },

    /**
     * Claims due true-ups by leasing them, as the usage outbox does (forwarding-repository.ts): the
     * attempt is counted and next_attempt_at moves past the lease in one short statement, so no row
     * lock is held while Stripe is called; SKIP LOCKED lets any number of workers claim at once, and
     * a dead worker's lease ends (it is short, and renewed while the true-up is held).
     */
    async claim(db: Knex, limit: number, leaseSeconds: number): Promise<TrueUp[]> {
      const { rows } = await db.raw<{ rows: UsageTrueUpRow[] }>(
        `update usage_true_ups t
            set next_attempt_at = now() + make_interval(secs => ?), attempts = t.attempts + 1
           from (select id from usage_true_ups
                  where state = 'pending' and next_attempt_at <= now()
                  order by next_attempt_at
                  limit ? for update skip locked) due
          where t.id = due.id
      returning t.*`,
        [leaseSeconds, limit],
      );
      return rows.map(toTrueUp);
    },

    /** Renews the lease of true-ups still pending, in one statement (the lease keeper's). */
    async extendLeases(db: Knex, ids: string[], leaseSeconds: number): Promise<void> {
      if (ids.length === 0) return;
      await db.raw(`update usage_true_ups set next_attempt_at = now() + make_interval(secs => ?) where id = any(?::uuid[]) and state = 'pending'`, [
        leaseSeconds,
        ids,
      ]);
    },

    /** Billed: the invoice item Stripe made and the price it was priced from. Whether it marked it (it was still pending). */
    async markSent(db: Knex, id: string, sent: { stripeInvoiceItemId: string; stripePriceId: string }): Promise<boolean> {
      const n = await db('usage_true_ups').where({ id, state: 'pending' }).update({
        state: 'sent',
        stripe_invoice_item_id: sent.stripeInvoiceItemId,
        stripe_price_id: sent.stripePriceId,
        sent_at: db.fn.now(),
        next_attempt_at: null,
        last_error: null,
      });
      return n > 0;
    },

    /** Parked for an admin. Whether it failed it (it was still pending). */
    async markFailed(db: Knex, id: string, error: string, stripePriceId: string | null): Promise<boolean> {
      const n = await db('usage_true_ups')
        .where({ id, state: 'pending' })
        .update({ state: 'failed', next_attempt_at: null, last_error: error, ...(stripePriceId ? { stripe_price_id: stripePriceId } : {}) });
      return n > 0;
    },

    async scheduleRetry(db: Knex, id: string, delayMs: number, error: string): Promise<void> {
      await db('usage_true_ups')
        .where({ id, state: 'pending' })
        .update({ next_attempt_at: db.raw('now() + make_interval(secs => ?)', [delayMs / 1000]), last_error: error });
    },

    /** Gives back claimed true-ups that were not attempted (shutdown): due now, the attempt not counted. */
    async release(db: Knex, ids: string[]): Promise<void> {
      if (ids.length === 0) return;
      await db('usage_true_ups')
        .whereIn('id', ids)
        .where({ state: 'pending' })
        .update({ next_attempt_at: db.fn.now(), attempts: db.raw('greatest(attempts - 1, 0)') });
    },

    /** A page of the report, newest first (ids are UUIDv7: id order is creation order); `beforeId` is the last id of the page before. */
    async list(db: Knex, f: TrueUpFilter & { beforeId?: string; limit: number }): Promise<TrueUp[]> {
      const q = filtered(db, f).select('*').orderBy('id', 'desc').limit(f.limit);
      if (f.beforeId) q.where('id', '<', f.beforeId);
      return (await q).map(toTrueUp);
    },

    /** Sums per metric over every row the filter matches. */
    async totals(db: Knex, f: TrueUpFilter): Promise<TrueUpTotal[]> {
      const rows = await filtered(db, f)
        .select('metric')
        .select(db.raw('sum(quantity)::text as quantity'), db.raw('sum(events)::int as events'))
        .groupBy('metric')
        .orderBy('metric');
      return (rows as unknown as { metric: string; quantity: string; events: number }[]).map((r) => ({
        metric: r.metric,
        quantity: trimDecimal(r.quantity),
        events: r.events,
      }));
    },

    /** Failed true-ups (all, or those of `ids`) back in the queue with a fresh budget of attempts. Returns the ids requeued. */
    async requeueFailed(db: Knex, ids: string[] | null): Promise<string[]> {
      const q = db('usage_true_ups').where({ state: 'failed' });
      if (ids) q.whereIn('id', ids);
      const rows = await q.update({ state: 'pending', attempts: 0, next_attempt_at: db.fn.now() }, ['id']);
      return rows.map((r) => r.id);
    },
  };
}

export type TrueUpsRepository = ReturnType<typeof createTrueUpsRepository>;
