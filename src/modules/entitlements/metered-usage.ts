import type { UsageService } from '../usage/usage-service';
import type { Deal, Deals } from './deals';
import { allowances, meteredStatuses, periodDays, type MeteredStatus } from './entitlement-rules';

export interface MeteredUsage {
  deal: Deal;
  /** The billing period the allowances are for (the subscription's, or the calendar month). */
  period: { start: Date; end: Date };
  /** Each metered limit's status over that period (absent metrics: none). */
  metered: Record<string, MeteredStatus>;
}

/**
 * The deal's billing-period usage of each metric named, from the daily totals in one query (the same
 * figures the threshold watch reads); a metric with no usage yet is "0".
 */
export async function periodUsage(
  usage: Pick<UsageService, 'periodTotals'>,
  deal: Pick<Deal, 'customerId' | 'period'>,
  metrics: readonly string[],
): Promise<Record<string, string>> {
  if (metrics.length === 0) return {};
  const days = periodDays(deal.period);
  const totals = await usage.periodTotals(metrics.map((metric) => ({ customerId: deal.customerId, metric, ...days })));
  return Object.fromEntries(metrics.map((m, i) => [m, totals[i] ?? '0']));
}

/** Each metered limit of the deal, at its billing period's usage. */
export async function meteredOf(usage: Pick<UsageService, 'periodTotals'>, deal: Deal): Promise<Record<string, MeteredStatus>> {
  return meteredStatuses(deal.effective, await periodUsage(usage, deal, Object.keys(allowances(deal.effective))));
}

/**
 * A customer's metered limits now: its deal, and each allowance's usage over the deal's billing
 * period, read in one query from the daily totals (the same figures the threshold watch reads).
 */
export async function meteredUsage(
  deps: { deals: Pick<Deals, 'dealFor'>; usage: Pick<UsageService, 'periodTotals'> },
  customerId: string,
): Promise<MeteredUsage> {
  const deal = await deps.deals.dealFor(customerId);
  return { deal, period: deal.period, metered: await meteredOf(deps.usage, deal) };
}
