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
  };
}

export type TrueUpsRepository = ReturnType<typeof createTrueUpsRepository>;
