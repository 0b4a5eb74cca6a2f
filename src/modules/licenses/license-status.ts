import type { Subscription } from '../subscriptions/subscription-types';

export type LicenseStatus = 'active' | 'trialing' | 'grace' | 'expired';

/** What a license says about its subscription, in whole seconds (NumericDate). */
export interface LicenseState {
  status: LicenseStatus;
  /** End of validity (active/trialing), null when open-ended. */
  validUntil: number | null;
  /** End of grace (grace, and expired when a grace ran out), else null. */
  graceUntil: number | null;
}

const PAID = new Set(['active', 'trialing']);
const FAILING = new Set(['past_due', 'unpaid']);

/**
 * The subscription a customer's license comes from: the newest that is paid up (active, trialing),
 * else the newest whose payment is failing (past_due, unpaid), else the newest of the rest (canceled,
 * incomplete, incomplete_expired, paused). `subs` is newest first.
 */
export function pickSubscription(subs: readonly Subscription[]): Subscription | null {
  return subs.find((s) => PAID.has(s.status)) ?? subs.find((s) => FAILING.has(s.status)) ?? subs[0] ?? null;
}

const sec = (d: Date) => Math.floor(d.getTime() / 1000);

function graceFrom(startSec: number, nowSec: number, graceDays: number): LicenseState {
  const graceUntil = startSec + graceDays * 86_400;
  return { status: graceUntil > nowSec ? 'grace' : 'expired', validUntil: null, graceUntil };
}

/**
 * - active/trialing: valid until the period end (the trial's end when there is no period). A period
 *   that is over while the status still says paid (the renewal has not reached us) is treated as a
 *   payment failing since the period end: grace, then expired, never a license that is already over.
 * - past_due/unpaid: grace for graceDays from when payment started failing, then expired.
 * - anything else: expired.
 */
export function licenseState(s: Subscription, nowSec: number, graceDays: number): LicenseState {
  if (PAID.has(s.status)) {
    const end = s.currentPeriodEnd ?? s.trialEnd;
    if (!end) return { status: s.status as 'active' | 'trialing', validUntil: null, graceUntil: null };
    if (sec(end) > nowSec) return { status: s.status as 'active' | 'trialing', validUntil: sec(end), graceUntil: null };
    return graceFrom(sec(end), nowSec, graceDays);
  }
  if (FAILING.has(s.status)) {
    // Rows from before payment_failing_since was kept were backfilled; updatedAt is the last resort.
    const since = s.paymentFailingSince ?? s.currentPeriodStart ?? s.updatedAt;
    return graceFrom(sec(since), nowSec, graceDays);
  }
  return { status: 'expired', validUntil: null, graceUntil: null };
}

const quoted = (set: ReadonlySet<string>) => [...set].map((v) => `'${v}'`).join(', ');

/**
 * licenseState(pickSubscription(...)) for every active customer at once, in SQL: rows of
 * `{license, n}` (customers without a subscription are not counted). It is for counts over the whole
 * fleet (GET /api/reports/overview), where reading every subscription into the process cost 0.9 s at
 * 100,000 customers. The rule is the JavaScript above; this is its translation, built from the same
 * PAID and FAILING sets and comparing whole seconds as licenseState does, and held equal to it by
 * tests/api/overview.test.ts over generated subscriptions at and around every boundary. A change to
 * the rule changes both, or that test fails.
 */
export function licenseCountsSql(nowSec: number, graceDays: number): { sql: string; bindings: number[] } {
  const grace = graceDays * 86_400;
  return {
    sql: `with picked as (
            select distinct on (s.customer_id) s.status,
                   floor(extract(epoch from coalesce(s.current_period_end, s.trial_end)))::int8 as paid_end,
                   floor(extract(epoch from coalesce(s.payment_failing_since, s.current_period_start, s.updated_at)))::int8 as failing_since
              from subscriptions s
              join customers c on c.id = s.customer_id
             where c.status = 'active'
             order by s.customer_id,
                      case when s.status in (${quoted(PAID)}) then 0 when s.status in (${quoted(FAILING)}) then 1 else 2 end,
                      s.id desc
          )
          select case
                   when status in (${quoted(PAID)}) then
                     case when paid_end is null or paid_end > ?::int8 then status
                          when paid_end + ?::int8 > ?::int8 then 'grace'
                          else 'expired' end
                   when status in (${quoted(FAILING)}) then
                     case when failing_since + ?::int8 > ?::int8 then 'grace' else 'expired' end
                   else 'expired'
                 end as license,
                 count(*)::int as n
            from picked
           group by 1`,
    bindings: [nowSec, grace, nowSec, grace, nowSec],
  };
}

/** exp: iat + ttl, never past the end of validity (active, trialing) or of grace. */
export function expiry(state: LicenseState, iat: number, ttlSeconds: number): number {
  const cap = state.status === 'grace' ? state.graceUntil : state.status === 'expired' ? null : state.validUntil;
  return cap === null ? iat + ttlSeconds : Math.min(iat + ttlSeconds, cap);
}
