import type { Knex } from 'knex';
import { AppError } from '../../errors/app-error';
import { StripeCallError, type StripeInvoiceState, type StripePort } from '../../stripe/stripe-port';
import { stripeReadFailure } from '../../stripe/stripe-read-failure';
import type { CustomersService } from '../customers/customers-service';
import { calendarMonth } from '../entitlements/entitlement-rules';
import { periodUsage } from '../entitlements/metered-usage';
import { pickSubscription } from '../licenses/license-status';
import type { Plan } from '../plans/plan-types';
import type { PlansService } from '../plans/plans-service';
import type { Subscription } from '../subscriptions/subscription-types';
import type { SubscriptionsService } from '../subscriptions/subscriptions-service';
import type { UsageService } from '../usage/usage-service';
import { estimateMetrics, localEstimate, type UpcomingInvoice } from './local-estimate';
import { UpcomingCache } from './upcoming-cache';

export interface UpcomingInvoiceDeps {
  db: Knex;
  subscriptions: Pick<SubscriptionsService, 'list'>;
  plans: Pick<PlansService, 'findByCode'>;
  customers: Pick<CustomersService, 'findById'>;
  usage: Pick<UsageService, 'periodTotals'>;
  stripe: StripePort;
  /** USAGE_METRICS. */
  metrics: readonly string[];
  /** UPCOMING_INVOICE_CACHE, in milliseconds. */
  cacheMs: number;
  /** How many customers' answers are kept at most. */
  cacheEntries?: number;
  now?: () => number;
}

/** A subscription that has ended brings no invoice. */
const ENDED = new Set(['canceled', 'incomplete_expired']);

const noUpcoming = () => new AppError('NOT_FOUND', 'no upcoming invoice: no current subscription');
const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** Stripe's preview in our words: each line's metric read from the plan's metered_prices (price -> metric). */
function fromStripe(inv: StripeInvoiceState, customerId: string, subscriptionId: string, plan: Plan, at: Date): UpcomingInvoice {
  const metricOf = new Map(Object.entries(plan.meteredPrices).map(([metric, price]) => [price, metric]));
  return {
    estimate: false,
    source: 'stripe',
    customer_id: customerId,
    subscription_id: subscriptionId,
    currency: inv.currency,
    period: { start: iso(inv.periodStart), end: iso(inv.periodEnd) },
    subtotal: inv.subtotal,
    tax: inv.tax,
    total: inv.total,
    amount_due: inv.amountDue,
    lines: inv.lines.map((l) => ({
      description: l.description,
      quantity: l.quantity,
      amount: l.amount,
      price: l.priceId,
      metric: (l.priceId && metricOf.get(l.priceId)) ?? null,
      period: { start: iso(l.periodStart), end: iso(l.periodEnd) },
    })),
    computed_at: at.toISOString(),
  };
}

/**
 * GET /api/invoices/upcoming: what the customer's current subscription will bring at the end of
 * its period, as of now. A subscription Stripe holds (Stripe on): Stripe's invoice preview, kept per
 * customer for UPCOMING_INVOICE_CACHE (upcoming-cache.ts). Any other (Stripe off, or a subscription
 * made here while it was): an estimate from the plan's local_pricing and the period's daily totals,
 * computed on every call (one query, like GET /api/usage, and always up to the last usage reported).
 */
export function createUpcomingInvoices(deps: UpcomingInvoiceDeps) {
  const { db, subscriptions, plans, customers, usage, stripe } = deps;
  const now = deps.now ?? Date.now;
  const cache = new UpcomingCache<UpcomingInvoice>(deps.cacheMs, deps.cacheEntries ?? 10_000, now);

  async function currentSubscription(customerId: string): Promise<Subscription | null> {
    return pickSubscription((await subscriptions.list(customerId)).filter((s) => !ENDED.has(s.status)));
  }

  async function estimate(customerId: string, sub: Subscription, plan: Plan): Promise<UpcomingInvoice> {
    const at = now();
    const period = sub.currentPeriodStart && sub.currentPeriodEnd ? { start: sub.currentPeriodStart, end: sub.currentPeriodEnd } : calendarMonth(at);
    const used = await periodUsage(usage, { customerId, period }, estimateMetrics(plan, deps.metrics));
    return localEstimate({ customerId, subscriptionId: sub.id, plan, period, usage: used, at: new Date(at) });
  }

  async function preview(customerId: string, stripeCustomerId: string, sub: Subscription, plan: Plan): Promise<UpcomingInvoice> {
    const at = new Date(now());
    try {
      const inv = await stripe.previewInvoice({ stripeCustomerId, stripeSubscriptionId: sub.stripeSubscriptionId! });
      return fromStripe(inv, customerId, sub.id, plan, at);
    } catch (err) {
      // Stripe has nothing to bill for it (the subscription ended there before its webhook reached us).
      if (err instanceof StripeCallError && err.status === 404 && err.stripeCode === 'invoice_upcoming_none') throw noUpcoming();
      throw stripeReadFailure(err, 'the invoice preview');
    }
  }

  return {
    cache,

    async upcoming(customerId: string): Promise<UpcomingInvoice> {
      const sub = await currentSubscription(customerId);
      if (!sub) throw noUpcoming();
      const plan = await plans.findByCode(db, sub.plan.code);
      if (!plan) throw noUpcoming();
      const stripeCustomerId = stripe.enabled && sub.stripeSubscriptionId ? (await customers.findById(db, customerId))?.stripeCustomerId : null;
      if (!stripeCustomerId) return estimate(customerId, sub, plan);
      const key = [sub.id, sub.stripeSubscriptionId, sub.updatedAt.getTime(), plan.id, plan.updatedAt.getTime()].join('|');
      return cache.get(customerId, key, () => preview(customerId, stripeCustomerId, sub, plan));
    },
  };
}

export type UpcomingInvoices = ReturnType<typeof createUpcomingInvoices>;
