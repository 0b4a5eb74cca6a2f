import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { LicenseNoticeKind } from '../../db/tables';
import { createIntervalJob } from '../../lib/interval-job';
import type { EventEmitter } from '../events/events-service';
import type { Subscription } from '../subscriptions/subscription-types';
import type { SubscriptionsService } from '../subscriptions/subscriptions-service';
import { licenseState, pickSubscription, type LicenseState } from './license-status';
import type { LicenseNoticesRepository } from './license-notices-repository';

const DAY = 86_400;
const sec = (d: Date) => Math.floor(d.getTime() / 1000);
const secOrNull = (d: Date | null) => (d ? sec(d) : null);

/** Ended subscriptions whose license was valid once: incomplete and incomplete_expired never were, and are not announced. */
const ENDED = new Set(['canceled', 'paused']);

export interface NoticeSettings {
  graceDays: number;
  expiringSoonDays: number;
  /** An expiry older than this is history: never announced (EVENT_RETENTION_DAYS, the events' own horizon). */
  lookbackDays: number;
}

export interface Notice {
  kind: LicenseNoticeKind;
  /** NumericDate: when validity ends (expiring_soon) or ended (expired). With the customer and kind, the episode. */
  endsAt: number;
  state: LicenseState;
}

/**
 * What a license, as license-status.ts computes it from `sub`, has to announce at `nowSec`, if anything:
 * - expiring_soon: it ends within `expiringSoonDays` with no renewal in sight: an active or trialing
 *   subscription set to cancel at its period end (one that renews normally gets none), or a grace
 *   (payment failing, or a period over with no renewal received) that ends by then.
 * - expired: the license is expired: its grace ran out (ends_at = grace_until), or the subscription
 *   was canceled or paused (ends_at = canceled_at, else the trial's end, as Stripe pauses a trial that
 *   ended unpaid, else its period end, else its creation: stable, so the same episode every run).
 *   Never for one that expired before the look-back.
 */
export function noticeFor(sub: Subscription, nowSec: number, s: NoticeSettings): Notice | null {
  const state = licenseState(sub, nowSec, s.graceDays);
  if (state.status === 'expired') {
    const endsAt = state.graceUntil ?? (ENDED.has(sub.status) ? sec(sub.canceledAt ?? sub.trialEnd ?? sub.currentPeriodEnd ?? sub.createdAt) : null);
    if (endsAt === null) return null;
    const since = nowSec - s.lookbackDays * DAY;
    // A subscription ended long ago but changed lately (Stripe's canceled_at is when the cancel was asked for) still counts.
    if (endsAt < since && sec(sub.updatedAt) < since) return null;
    return { kind: 'expired', endsAt, state };
  }
  const end = state.status === 'grace' ? state.graceUntil : state.validUntil;
  if (end === null || end - nowSec > s.expiringSoonDays * DAY) return null;
  if (state.status !== 'grace' && !sub.cancelAtPeriodEnd) return null;
  return { kind: 'expiring_soon', endsAt: end, state };
}

/** The event's data: the license claims that say what happened (NumericDate seconds, as in the license). */
export function noticeData(customerId: string, sub: Subscription, n: Notice) {
  return {
    customer_id: customerId,
    status: n.state.status,
    plan: { code: sub.plan.code, name: sub.plan.name },
    subscription: {
      id: sub.id,
      status: sub.status,
      current_period_end: secOrNull(sub.currentPeriodEnd),
      cancel_at_period_end: sub.cancelAtPeriodEnd,
    },
    valid_until: n.state.validUntil,
    grace_until: n.state.graceUntil,
    ends_at: n.endsAt,
  };
}

export interface LicenseNoticesDeps {
  db: Knex;
  repo: LicenseNoticesRepository;
  subscriptions: Pick<SubscriptionsService, 'list'>;
  events: EventEmitter;
  logger: Logger;
  settings: NoticeSettings;
  now?: () => number;
  pageSize?: number;
}

const FIRST_UUID = '00000000-0000-0000-0000-000000000000';

/**
 * license.expiring_soon and license.expired, which no request causes: a run finds the customers
 * whose license may have something to announce, reads each one's subscriptions as a license fetch
 * does (the same pick, the same status), and announces each episode once. The notice row and its
 * event are one transaction, and the notice's unique key decides: two instances running at once
 * announce an episode once, and an event that could not be written leaves no notice, so the next
 * run tries again.
 */
export function createLicenseNotices(deps: LicenseNoticesDeps) {
  const { db, repo, subscriptions, events, logger, settings } = deps;
  const now = deps.now ?? Date.now;
  const pageSize = deps.pageSize ?? 200;

  async function announce(customerId: string, nowSec: number): Promise<LicenseNoticeKind | null> {
    const sub = pickSubscription(await subscriptions.list(customerId));
    const notice = sub && noticeFor(sub, nowSec, settings);
    if (!sub || !notice) return null;
    return db.transaction(async (trx) => {
      const fresh = await repo.insertOnce(trx, { customerId, kind: notice.kind, endsAt: new Date(notice.endsAt * 1000), subscriptionId: sub.id });
      if (!fresh) return null;
      await events.emit(trx, { type: `license.${notice.kind}`, customerId, data: noticeData(customerId, sub, notice) });
      return notice.kind;
    });
  }

  return {
    /** One pass over every candidate; returns how many of each were announced by this run. */
    async run(): Promise<Record<LicenseNoticeKind, number>> {
      const nowMs = now();
      const nowSec = Math.floor(nowMs / 1000);
      const since = nowMs - settings.lookbackDays * DAY * 1000;
      const bounds = {
        now: new Date(nowMs),
        soon: new Date(nowMs + settings.expiringSoonDays * DAY * 1000),
        since: new Date(since),
        graceSince: new Date(since - settings.graceDays * DAY * 1000),
      };
      const counts: Record<LicenseNoticeKind, number> = { expiring_soon: 0, expired: 0 };
      for (let after = FIRST_UUID; ;) {
        const ids = await repo.candidates(db, bounds, after, pageSize);
        for (const customerId of ids) {
          try {
            const kind = await announce(customerId, nowSec);
            if (kind) counts[kind]++;
          } catch (err) {
            // One customer's failure never holds back the others; its episode is tried again next run.
            logger.error({ err, customer_id: customerId }, 'license notice failed');
          }
        }
        if (ids.length < pageSize) return counts;
        after = ids[ids.length - 1]!;
      }
    },
  };
}

export type LicenseNotices = ReturnType<typeof createLicenseNotices>;

/** Runs the notices every interval, in every instance (the unique key makes that safe). */
export function createLicenseNoticesJob({ notices, logger, intervalMs }: { notices: LicenseNotices; logger: Logger; intervalMs: number }) {
  return createIntervalJob({
    task: () => notices.run(),
    report: (c) => (c.expiring_soon + c.expired ? { done: 'license notices sent', fields: c } : null),
    failed: 'license notices failed',
    logger,
    intervalMs,
  });
}
