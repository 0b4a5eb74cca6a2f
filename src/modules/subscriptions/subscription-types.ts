import type { StripeSubscriptionState } from '../../stripe/stripe-port';
import type { Entitlements } from '../plans/plan-types';

/** The state we keep of a subscription: the same fields, whether it lives in Stripe or only here. */
export type LocalState = Pick<StripeSubscriptionState, 'status' | 'currentPeriodStart' | 'currentPeriodEnd' | 'cancelAtPeriodEnd' | 'canceledAt' | 'trialEnd'>;

/** A subscription as the subscriptions module hands it out (to its routes, and to the licenses module). */
export interface Subscription extends LocalState {
  id: string;
  customerId: string;
  planId: string;
  plan: { code: string; name: string; entitlements: Entitlements };
  stripeSubscriptionId: string | null;
  /** When it became past_due or unpaid (null when paid up): a license's grace runs from then. */
  paymentFailingSince: Date | null;
  createdAt: Date;
  updatedAt: Date;
}
