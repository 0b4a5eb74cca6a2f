import { isDeepStrictEqual } from 'node:util';
import type { EventInput } from '../events/events-service';
import type { Subscription } from './subscription-types';
import { subscriptionJson } from './subscriptions-schemas';

/**
 * The events of one write of a subscription, from its state before (null: it is new) and after, both
 * read in the write's transaction. One subscription.* event per change that the API shows:
 * `created`; `canceled` when it becomes canceled; `past_due` when it enters past_due (once per
 * entry); `updated` for any other change of what the API shows (nothing for a write that changed
 * nothing, such as a replayed Stripe state). And `license.grace_started` when its payment starts
 * failing (payment_failing_since set): the license's grace runs from then for `graceDays`.
 */
export function subscriptionEvents(before: Subscription | null, after: Subscription, graceDays: number): EventInput[] {
  const data = subscriptionJson(after);
  const out: EventInput[] = [];
  const event = (type: EventInput['type']) => out.push({ type, customerId: after.customerId, data });
  if (!before) event('subscription.created');
  else if (after.status === 'canceled' && before.status !== 'canceled') event('subscription.canceled');
  else if (after.status === 'past_due' && before.status !== 'past_due') event('subscription.past_due');
  else if (!isDeepStrictEqual(shown(before), shown(after))) event('subscription.updated');
  if (after.paymentFailingSince && !before?.paymentFailingSince) {
    out.push({
      type: 'license.grace_started',
      customerId: after.customerId,
      data: {
        customer_id: after.customerId,
        subscription_id: after.id,
        status: after.status,
        payment_failing_since: after.paymentFailingSince.toISOString(),
        grace_until: new Date(after.paymentFailingSince.getTime() + graceDays * 86_400_000).toISOString(),
      },
    });
  }
  return out;
}

/** What the API shows, but for updated_at (a write that changed nothing else still moves it). */
function shown(s: Subscription) {
  const { updated_at: _updatedAt, ...rest } = subscriptionJson(s);
  return rest;
}
