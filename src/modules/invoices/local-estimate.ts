import { micros } from '../entitlements/entitlement-rules';
import type { Plan } from '../plans/plan-types';
import type { z } from 'zod';
import type { upcomingInvoiceResponse } from './invoices-schemas';

/*
 * The period's charges computed here, for a subscription Stripe does not bill (Stripe off, or a
 * subscription made while it was): the plan's local_pricing applied to the period's usage from the
 * daily totals. Money is never a float: a quantity (at most 6 decimal places) times a unit price (at
 * most 12) is an exact product of integers, rounded half up to a whole minor unit per line, as
 * Stripe rounds a metered line.
 */

export type UpcomingInvoice = z.input<typeof upcomingInvoiceResponse>;
type Line = UpcomingInvoice['lines'][number];

const UNIT_SCALE = 12;
const PRODUCT = 10n ** BigInt(6 + UNIT_SCALE);

/** "0.05" -> 50000000000n (the price in 10^-12 minor units). */
function unitPico(decimal: string): bigint {
  const [whole = '0', frac = ''] = decimal.split('.');
  return BigInt(whole) * 10n ** BigInt(UNIT_SCALE) + BigInt((frac + '0'.repeat(UNIT_SCALE)).slice(0, UNIT_SCALE) || '0');
}

/** round(quantity × unit price), half up, in whole minor units: exact for any quantity and price the schemas let in. */
export function lineAmount(quantity: string, unitAmountDecimal: string): number {
  const exact = micros(quantity) * unitPico(unitAmountDecimal);
  const rounded = (exact + PRODUCT / 2n) / PRODUCT;
  if (rounded > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError('the amount is beyond what an answer can carry exactly');
  return Number(rounded);
}

/**
 * The metrics an estimate shows a line for: those the plan prices locally; without local pricing,
 * those it bills in Stripe (metered_prices) and those it gives an allowance or a limit for.
 */
export function estimateMetrics(plan: Pick<Plan, 'localPricing' | 'meteredPrices' | 'entitlements'>, usageMetrics: readonly string[]): string[] {
  if (plan.localPricing) return Object.keys(plan.localPricing.metered).sort();
  const named = [...Object.keys(plan.meteredPrices), ...Object.keys(plan.entitlements.limits)].filter((m) => usageMetrics.includes(m));
  return [...new Set(named)].sort();
}

export function localEstimate(input: {
  customerId: string;
  subscriptionId: string;
  plan: Pick<Plan, 'name' | 'localPricing'>;
  period: { start: Date; end: Date };
  /** The period's usage of each metric shown, as decimal strings. */
  usage: Readonly<Record<string, string>>;
  at: Date;
}): UpcomingInvoice {
  const { plan, usage } = input;
  const pricing = plan.localPricing;
  const period = { start: input.period.start.toISOString(), end: input.period.end.toISOString() };
  const base: Line = { description: plan.name, quantity: 1, amount: pricing?.unit_amount ?? 0, price: null, metric: null, period };
  const metered: Line[] = Object.entries(usage).map(([metric, quantity]) => {
    const unit = pricing?.metered[metric];
    return {
      description: metric,
      quantity: Number(quantity),
      amount: unit === undefined ? 0 : lineAmount(quantity, unit),
      price: null,
      metric,
      period,
    };
  });
  const lines = [base, ...metered];
  const subtotal = lines.reduce((sum, l) => sum + l.amount, 0);
  return {
    estimate: true,
    source: 'local',
    customer_id: input.customerId,
    subscription_id: input.subscriptionId,
    currency: pricing?.currency ?? null,
    period,
    subtotal,
    tax: 0,
    total: subtotal,
    amount_due: subtotal,
    lines,
    computed_at: input.at.toISOString(),
  };
}
