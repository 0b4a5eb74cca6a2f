import type { Knex } from 'knex';
import type { ActorContext } from '../../lib/request-context';
import type { AuditService } from '../audit/audit-service';
import type { ForwardingRepository, Rejection } from './forwarding-repository';

/**
 * The outbox towards Stripe as other parts see it: what admins see of it and the one thing they can
 * do (retry), and what the Stripe webhooks report back (events Stripe rejected after accepting them).
 */
export function createForwardingService(deps: { db: Knex; repo: ForwardingRepository; audit: AuditService; stripeEnabled: boolean }) {
  const { db, repo, audit, stripeEnabled } = deps;
  return {
    async status() {
      const [stats, failures] = await Promise.all([repo.stats(db), repo.listFailed(db, 50)]);
      return { stripeEnabled, stats, failures };
    },

    /**
     * The outbox's backlog and its latest failures only: what the partial indexes answer, without
     * status()'s totals of local and sent events, which count every event stored (for the overview).
     */
    async backlog(failuresLimit: number) {
      const [backlog, failures] = await Promise.all([repo.backlog(db), repo.listFailed(db, failuresLimit)]);
      return { stripeEnabled, backlog, failures };
    },

    async retry(ctx: ActorContext, ids: string[] | null): Promise<string[]> {
      return db.transaction(async (trx) => {
        const requeued = await repo.requeueFailed(trx, ids);
        await audit.record(trx, ctx, {
          action: 'usage.forwarding_retry',
          outcome: 'success',
          targetType: 'usage_event',
          details: { requested: ids ? ids.length : 'all failed', requeued: requeued.length },
        });
        return requeued;
      });
    },

    /**
     * Usage events Stripe rejected after accepting them (a meter error report) become failed, in the
     * caller's transaction (the webhook's, which records the event as processed with it). Events
     * already failed or kept local are left alone. Returns the ids changed.
     */
    markRejected(trx: Knex, rejections: Rejection[]): Promise<string[]> {
      return repo.markRejected(trx, rejections);
    },
  };
}

export type ForwardingService = ReturnType<typeof createForwardingService>;
