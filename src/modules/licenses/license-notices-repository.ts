import type { Knex } from 'knex';
import type { LicenseNoticeKind } from '../../db/tables';

export interface CandidateBounds {
  now: Date;
  /** now + LICENSE_EXPIRING_SOON_DAYS: a validity ending later is not yet news. */
  soon: Date;
  /** now - the look-back: an expiry older than this is history, never announced. */
  since: Date;
  /** since - LICENSE_GRACE_DAYS: a grace that started before this ran out before `since`. */
  graceSince: Date;
}

/** The smallest event id written at or after `ms`: evt_ + a UUIDv7 in hex, whose first 48 bits are its time. */
export const firstEventIdAt = (ms: number) => `evt_${Math.max(0, Math.floor(ms)).toString(16).padStart(12, '0')}${'0'.repeat(20)}`;

/**
 * Which customers' licenses may be expiring soon or have expired: a cheap, wide filter on the
 * subscriptions (the license's own rules, license-status.ts, decide afterwards). Paid subscriptions
 * count only when set to cancel or past their period (one that renews normally has its renewal in
 * sight); failing ones while their grace may still be news; ended ones when they ended, or last
 * changed, within the look-back.
 */
const CANDIDATES = `
select distinct s.customer_id
  from subscriptions s join customers c on c.id = s.customer_id
 where c.status = 'active' and s.customer_id > ?
   and (
     (s.status in ('active', 'trialing')
       and coalesce(s.current_period_end, s.trial_end) between ? and ?
       and (s.cancel_at_period_end or coalesce(s.current_period_end, s.trial_end) <= ?))
     or (s.status in ('past_due', 'unpaid') and coalesce(s.payment_failing_since, s.current_period_start, s.updated_at) > ?)
     or (s.status in ('canceled', 'paused') and greatest(s.updated_at, coalesce(s.canceled_at, s.trial_end, s.current_period_end, s.created_at)) > ?)
   )
 order by s.customer_id
 limit ?`;

export function createLicenseNoticesRepository() {
  return {
    /** One page of candidate customer ids, after `after` (keyset), ascending. */
    async candidates(db: Knex, b: CandidateBounds, after: string, limit: number): Promise<string[]> {
      const { rows } = await db.raw<{ rows: { customer_id: string }[] }>(CANDIDATES, [after, b.graceSince, b.soon, b.now, b.graceSince, b.since, limit]);
      return rows.map((r) => r.customer_id);
    },

    /**
     * Records an episode's notice; true when this call inserted it (then the caller writes the event
     * in the same transaction), false when it was already recorded, by this instance or another.
     * A concurrent insert of the same key waits for the first to commit or roll back.
     */
    async insertOnce(trx: Knex, n: { customerId: string; kind: LicenseNoticeKind; endsAt: Date; subscriptionId: string | null }): Promise<boolean> {
      const rows = await trx('license_notices')
        .insert({ customer_id: n.customerId, kind: n.kind, ends_at: n.endsAt, subscription_id: n.subscriptionId })
        .onConflict(['customer_id', 'kind', 'ends_at'])
        .ignore()
        .returning('customer_id');
      return rows.length > 0;
    },

    /**
     * Serialises the instance-limit notices of one customer for the rest of the transaction (a
     * transaction-level advisory lock: nothing to release, nothing held past the commit).
     */
    async lockLimitNotices(trx: Knex, customerId: string): Promise<void> {
      await trx.raw('select pg_advisory_xact_lock(hashtext(?))', [`instance.limit_reached:${customerId}`]);
    },

    /** Whether an event of this type was written for the customer at or after `sinceMs` (the service clock, through the event id). */
    async eventSince(db: Knex, customerId: string, type: string, sinceMs: number): Promise<boolean> {
      const row = await db('events')
        .where({ customer_id: customerId, type })
        .whereRaw('id collate "C" >= ?', [firstEventIdAt(sinceMs)])
        .first('id');
      return row !== undefined;
    },
  };
}

export type LicenseNoticesRepository = ReturnType<typeof createLicenseNoticesRepository>;
