/**
 * What the service needs from Stripe, and nothing else. Two implementations: the real
 * stripe-node client, and a disabled one for when Stripe is off (STRIPE_SECRET_KEY unset).
 */
export interface MeterEventInput {
  eventName: string;
  stripeCustomerId: string;
  /** A decimal string: Stripe's meter event payload values are strings. */
  value: string;
  /** Our event id: Stripe de-duplicates on it, so a retried send counts once. */
  identifier: string;
  occurredAt: Date;
}

export interface StripePort {
  readonly enabled: boolean;
  sendMeterEvent(input: MeterEventInput): Promise<void>;
}

/** A failed Stripe call, classified for retry decisions. Never carries a secret. */
export class StripeCallError extends Error {
  constructor(
    message: string,
    /** Worth trying again later: network trouble, timeouts, 409 lock, 429, 5xx. */
    readonly retryable: boolean,
    readonly status?: number,
    readonly stripeCode?: string,
  ) {
    super(message);
    this.name = 'StripeCallError';
  }
}

export const disabledStripe: StripePort = {
  enabled: false,
  async sendMeterEvent() {
    throw new StripeCallError('Stripe is not configured', false);
  },
};
