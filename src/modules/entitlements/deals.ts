import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { PlansService } from '../plans/plans-service';
import type { Entitlements } from '../plans/plan-types';
import type { Subscription } from '../subscriptions/subscription-types';
import type { SubscriptionsService } from '../subscriptions/subscriptions-service';
import { pickSubscription } from '../licenses/license-status';
import { calendarMonth, effectiveEntitlements, overridesApply, type EffectiveEntitlements, type Overrides, type UsagePeriod } from './entitlement-rules';
import type { OverridesRepository } from './overrides-repository';

/** A plan as a deal reads it. */
export interface DealPlan {
  code: string;
  name: string;
  entitlements: Entitlements;
}

/**
 * A customer's deal at one moment: where its entitlements come from (the subscription's plan, or
 * LICENSE_DEFAULT_PLAN, or nothing), its overrides (kept even when they no longer apply), what it is
 * entitled to now, and the billing period its allowances are for.
 */
export interface Deal {
  customerId: string;
  plan: DealPlan | null;
  subscription: Subscription | null;
  overrides: Overrides | null;
  /** The overrides apply now (present, and not past their expires_at). */
  overridesApply: boolean;
  effective: EffectiveEntitlements;
  /** The subscription's current period; without one, the calendar month (UTC). */
  period: UsagePeriod;
  /** Whether `period` is the subscription's own (false: the calendar month stands in). */
  periodFromSubscription: boolean;
  /** The moment this deal was read for. */
  at: number;
}

export interface DealsDeps {
  db: Knex;
  overrides: OverridesRepository;
  subscriptions: Pick<SubscriptionsService, 'list'>;
  plans: Pick<PlansService, 'findByCode'>;
  /** LICENSE_DEFAULT_PLAN: the plan of a customer without a subscription. */
  defaultPlan: string | null;
  /** USAGE_METRICS: a limit named after one is an allowance for the period. */
  metrics: readonly string[];
  logger: Logger;
  now?: () => number;
}

/**
 * Reads deals. One place decides where a customer's entitlements come from, so the license, the
 * instance limit, GET /api/me, GET /api/usage and the threshold watch agree.
 */
export function createDeals(deps: DealsDeps) {
  const { db, subscriptions, plans, metrics, logger } = deps;
  const now = deps.now ?? Date.now;

  async function planOf(customerId: string): Promise<{ plan: DealPlan | null; subscription: Subscription | null }> {
    const sub = pickSubscription(await subscriptions.list(customerId));
    if (sub) return { plan: sub.plan, subscription: sub };
    if (deps.defaultPlan) {
      const plan = await plans.findByCode(db, deps.defaultPlan);
      if (plan) return { plan, subscription: null };
      logger.warn({ plan: deps.defaultPlan }, 'LICENSE_DEFAULT_PLAN names no plan: customers without a subscription get no license');
    }
    return { plan: null, subscription: null };
  }

  /** Builds a deal from what was read. */
  function assemble(customerId: string, plan: DealPlan | null, subscription: Subscription | null, overrides: Overrides | null, at: number): Deal {
    const own =
      subscription?.currentPeriodStart && subscription.currentPeriodEnd ? { start: subscription.currentPeriodStart, end: subscription.currentPeriodEnd } : null;
    return {
      customerId,
      plan,
      subscription,
      overrides,
      overridesApply: overridesApply(overrides, at),
      effective: effectiveEntitlements(plan?.entitlements ?? null, overrides, metrics, at),
      period: own ?? calendarMonth(at),
      periodFromSubscription: own !== null,
      at,
    };
  }

  return {
    /** The customer's deal now (or at `at`). */
    async dealFor(customerId: string, at = now()): Promise<Deal> {
      const [{ plan, subscription }, overrides] = await Promise.all([planOf(customerId), deps.overrides.find(db, customerId)]);
      return assemble(customerId, plan, subscription, overrides, at);
    },

    /** The same deal with other overrides (a PUT checked before it is stored). */
    withOverrides(deal: Deal, overrides: Overrides | null): Deal {
      return assemble(deal.customerId, deal.plan, deal.subscription, overrides, deal.at);
    },

    /** Several customers' deals (the threshold watch's cache misses): one read of the overrides. */
    async dealsFor(customerIds: readonly string[], at = now()): Promise<Map<string, Deal>> {
      const overrides = await deps.overrides.findMany(db, customerIds);
      const out = new Map<string, Deal>();
      await Promise.all(
        customerIds.map(async (id) => {
          const { plan, subscription } = await planOf(id);
          out.set(id, assemble(id, plan, subscription, overrides.get(id) ?? null, at));
        }),
      );
      return out;
    },
  };
}

export type Deals = ReturnType<typeof createDeals>;
