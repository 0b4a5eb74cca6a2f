import { z } from 'zod';
import { id, list, nullableTimestamp, obj, timestamp } from '../../http/response-schemas';
import { planResponseItem } from '../plans/plans-schemas';

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
});
