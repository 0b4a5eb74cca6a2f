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
 * A customer's metered limits now: its deal, and each allowance's usage over the deal's billing
 * period, read in one query from the daily totals (the same figures the threshold watch reads).
 */
export async function meteredUsage(
  deps: { deals: Pick<Deals, 'dealFor'>; usage: Pick<UsageService, 'periodTotals'> },
  customerId: string,
): Promise<MeteredUsage> {
  const deal = await deps.deals.dealFor(customerId);
  const metrics = Object.keys(allowances(deal.effective));
  const days = periodDays(deal.period);
  const totals = await deps.usage.periodTotals(metrics.map((metric) => ({ customerId, metric, ...days })));
  const used = Object.fromEntries(metrics.map((m, i) => [m, totals[i]!]));
  return { deal, period: deal.period, metered: meteredStatuses(deal.effective, used) };
}
