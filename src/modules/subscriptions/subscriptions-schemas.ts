import { z } from 'zod';
import { id, list, nullableTimestamp, obj, timestamp } from '../../http/response-schemas';
import { iso } from '../../http/common-schemas';
import { planResponseItem } from '../plans/plans-schemas';
import type { Subscription } from './subscription-types';

/** A subscription as every answer (and its events) show it. */
export const subscriptionJson = (s: Subscription) => ({
  id: s.id,
  customer_id: s.customerId,
  plan: { code: s.plan.code, name: s.plan.name, entitlements: s.plan.entitlements },
  status: s.status,
  stripe_subscription_id: s.stripeSubscriptionId,
  current_period_start: iso(s.currentPeriodStart),
  current_period_end: iso(s.currentPeriodEnd),
  cancel_at_period_end: s.cancelAtPeriodEnd,
  canceled_at: iso(s.canceledAt),
  trial_end: iso(s.trialEnd),
  created_at: iso(s.createdAt),
  updated_at: iso(s.updatedAt),
});

const subscription = obj({
  id,
  customer_id: id,
  plan: obj({ code: z.string(), name: z.string(), entitlements: planResponseItem.shape.entitlements }),
  status: z.enum(['incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due', 'canceled', 'unpaid', 'paused']),
  stripe_subscription_id: z.string().nullable(),
  current_period_start: nullableTimestamp,
  current_period_end: nullableTimestamp,
  cancel_at_period_end: z.boolean(),
  canceled_at: nullableTimestamp,
  trial_end: nullableTimestamp,
  created_at: timestamp,
  updated_at: timestamp,
});

export const subscriptionResponse = obj({ subscription });
export const subscriptionsResponse = list(subscription);
export const reconciledResponse = obj({
  stripe_enabled: z.boolean(),
  checked: z.number().int(),
  changes: z.array(
    obj({ subscription_id: id.nullable(), stripe_subscription_id: z.string(), change: z.string(), from: z.string().optional(), to: z.string().optional() }),
  ),
  /** Each linked customer's invoices, re-listed and applied as the invoice webhooks apply them. */
  invoices: obj({
    checked: z.number().int(),
    changes: z.array(
      obj({ invoice_id: id.nullable(), stripe_invoice_id: z.string(), change: z.string(), from: z.string().optional(), to: z.string().optional() }),
    ),
  }),
});
