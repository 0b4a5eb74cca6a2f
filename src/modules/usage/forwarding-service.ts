import type { Knex } from 'knex';
import type { ActorContext } from '../../lib/request-context';
import type { AuditService } from '../audit/audit-service';
import type { ForwardingRepository } from './forwarding-repository';

/** What admins see of the outbox towards Stripe, and the one thing they can do: retry. */
export function createForwardingService(deps: { db: Knex; repo: ForwardingRepository; audit: AuditService; stripeEnabled: boolean }) {
  const { db, repo, audit, stripeEnabled } = deps;
  return {
    async status() {
      const [stats, failures] = await Promise.all([repo.stats(db), repo.listFailed(db, 50)]);
      return { stripeEnabled, stats, failures };
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
  };
}

export type ForwardingService = ReturnType<typeof createForwardingService>;
