import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { createIntervalJob } from '../../lib/interval-job';
import { systemContext } from '../../lib/request-context';
import type { AuditService } from '../audit/audit-service';
import type { EventEmitter } from '../events/events-service';
import type { Deals } from './deals';
import { effectiveJson, overridesJson } from './entitlements-schemas';
import type { OverridesRepository } from './overrides-repository';
import { iso } from '../../http/common-schemas';

export interface OverridesExpiryDeps {
  db: Knex;
  repo: OverridesRepository;
  deals: Pick<Deals, 'dealFor' | 'withOverrides'>;
  audit: AuditService;
  events: EventEmitter;
  now?: () => number;
  /** Told after each announcement has committed (as for a change through the API). */
  onChanged?: (customerId: string) => void;
  /** Announcements per pass at most (the next pass goes on). */
  maxPerRun?: number;
}

/**
 * Announces overrides that have reached their end: customer.entitlements_expired, once. It changes
 * nothing of what applies: every reader compares expires_at with its own clock, so overrides stop
 * applying at their end whether this runs or not. Each announcement is one transaction holding the
 * row it claimed (SKIP LOCKED): the event, the audit row and the mark that it was announced commit
 * together, so however many instances run this at once, each end is announced exactly once.
 */
export function createOverridesExpiry(deps: OverridesExpiryDeps) {
  const { db, repo, deals, audit, events } = deps;
  const now = deps.now ?? Date.now;

  /** Announces one end; the customer's id, or null when none is due. */
  async function announceOne(): Promise<string | null> {
    return db.transaction(async (trx) => {
      const [o] = await repo.claimExpired(trx, new Date(now()), 1);
      if (!o) return null;
      // What the customer is entitled to now, without them.
      const deal = deals.withOverrides(await deals.dealFor(o.customerId), null);
      await events.emit(trx, {
        type: 'customer.entitlements_expired',
        customerId: o.customerId,
        data: { customer_id: o.customerId, overrides: overridesJson(o, deal.at), effective: effectiveJson(deal.effective) },
      });
      await audit.record(trx, systemContext(), {
        action: 'customer.entitlements_expire',
        outcome: 'success',
        targetType: 'customer',
        targetId: o.customerId,
        details: { terms: o.terms, note: o.note, expires_at: iso(o.expiresAt) },
      });
      await repo.markAnnounced(trx, o.customerId, new Date(now()));
      return o.customerId;
    });
  }

  return {
    /** One pass: announces the ends due, oldest first; how many it announced. */
    async run(): Promise<number> {
      let n = 0;
      for (; n < (deps.maxPerRun ?? 500); n++) {
        const customerId = await announceOne();
        if (!customerId) break;
        deps.onChanged?.(customerId);
      }
      return n;
    },
  };
}

export type OverridesExpiry = ReturnType<typeof createOverridesExpiry>;

/** The announcements every interval, in every instance. */
export function createOverridesExpiryJob({ expiry, logger, intervalMs }: { expiry: Pick<OverridesExpiry, 'run'>; logger: Logger; intervalMs: number }) {
  return createIntervalJob({
    task: () => expiry.run(),
    report: (n) => (n ? { done: 'ends of entitlement overrides announced', fields: { announced: n } } : null),
    failed: 'announcing the ends of entitlement overrides failed',
    logger,
    intervalMs,
  });
}
