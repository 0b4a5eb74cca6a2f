import type { Knex } from 'knex';
import { uuidv7 } from '../../lib/ids';
import type { ActorContext } from '../../lib/request-context';
import type { AuditService } from '../audit/audit-service';
import type { Deals } from '../entitlements/deals';
import type { LateEvent, TrueUp, TrueUpFilter, TrueUpsRepository, TrueUpTotal } from './true-ups-repository';

/**
 * Stripe's meters take events at most 35 days old; an event is late one day before that, so one
 * the forwarder sends after a backlog is still within Stripe's window.
 */
export const LATE_AFTER_MS = 34 * 86_400_000;

export interface TrueUpsServiceDeps {
  /** The report and the retry read and write here; recordLate writes in its caller's transaction. */
  db: Knex;
  repo: TrueUpsRepository;
  audit: Pick<AuditService, 'record'>;
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

    /**
     * GET /api/reports/usage/late: a page of true-ups, newest first, and the totals per metric of
     * every true-up the filter matches (all pages). `limit` rows at most; more: true when there are more.
     */
    async report(filter: TrueUpFilter, page: { beforeId?: string; limit: number }): Promise<{ items: TrueUp[]; more: boolean; totals: TrueUpTotal[] }> {
      const [rows, totals] = await Promise.all([
        deps.repo.list(deps.db, { ...filter, beforeId: page.beforeId, limit: page.limit + 1 }),
        deps.repo.totals(deps.db, filter),
      ]);
      return { items: rows.slice(0, page.limit), more: rows.length > page.limit, totals };
    },

    /** Every true-up the filter matches, up to `max` + 1 (the CSV: the caller refuses more than `max`). */
    all: (filter: TrueUpFilter, max: number): Promise<TrueUp[]> => deps.repo.list(deps.db, { ...filter, limit: max + 1 }),

    /**
     * Failed true-ups (the ids given, or all) back to pending with a fresh budget of attempts: after
     * the cause was fixed (a customer linked to Stripe, a metered price set, a price made per-unit).
     * Audited with the ids requeued. Others (pending, sent, local) are left as they are.
     */
    async retry(ctx: ActorContext, ids: string[] | null): Promise<string[]> {
      return deps.db.transaction(async (trx) => {
        const requeued = await deps.repo.requeueFailed(trx, ids);
        await deps.audit.record(trx, ctx, {
          action: 'usage.true_up_retry',
          outcome: 'success',
          targetType: 'usage_true_up',
          details: { requested: ids ? ids.length : 'all failed', requeued: requeued.length, ids: requeued.slice(0, 100) },
        });
        return requeued;
      });
    },
  };
}

export type TrueUpsService = ReturnType<typeof createTrueUpsService>;
