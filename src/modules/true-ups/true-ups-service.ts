import type { Knex } from 'knex';
import { uuidv7 } from '../../lib/ids';
import type { Deals } from '../entitlements/deals';
import type { LateEvent, TrueUp, TrueUpsRepository } from './true-ups-repository';

/**
 * Stripe's meters take events at most 35 days old; an event is late one day before that, so one
 * the forwarder sends after a backlog is still within Stripe's window.
 */
export const LATE_AFTER_MS = 34 * 86_400_000;

export interface TrueUpsServiceDeps {
  repo: TrueUpsRepository;
  deals: Pick<Deals, 'dealFor'>;
  /** Stripe on: true-ups wait in the outbox (pending); off: `local`, the report alone. */
  stripeEnabled: boolean;
  now?: () => number;
}

/**
 * Late usage: usage whose time falls in a billing period Stripe has already invoiced, or too old for
 * Stripe's meters. Such an event is stored like any other (the daily totals count it) but never sent
 * as a meter event (state `late`); it is billed as a true-up: one Stripe invoice item per bundle and
 * metric on the customer's next invoice, sent through the true-up outbox (true-up-worker.ts).
 */
export function createTrueUpsService(deps: TrueUpsServiceDeps) {
  const now = deps.now ?? Date.now;
  return {
    /**
     * The moment before which the customer's usage is late, as of `nowMs`: the start of the
     * subscription's current period (an earlier period is invoiced), or LATE_AFTER_MS ago, whichever
     * is later. Without a subscription period, the age alone.
     */
    async lateCutoff(customerId: string, nowMs = now()): Promise<Date> {
      const deal = await deps.deals.dealFor(customerId, nowMs);
      const byAge = nowMs - LATE_AFTER_MS;
      const byPeriod = deal.periodFromSubscription ? deal.period.start.getTime() : -Infinity;
      return new Date(Math.max(byAge, byPeriod));
    },

    /**
     * Records the late events a bundle's write stored (never replays: they were billed, or are late,
     * already), one true-up per metric, in the caller's transaction, the one that stored them.
     */
    async recordLate(trx: Knex, customerId: string, bundleId: string, events: readonly LateEvent[]): Promise<TrueUp[]> {
      const at = now();
      return deps.repo.insertForBundle(trx, {
        customerId,
        bundleId,
        state: deps.stripeEnabled ? 'pending' : 'local',
        events,
        ids: () => uuidv7(at),
      });
    },
  };
}

export type TrueUpsService = ReturnType<typeof createTrueUpsService>;
