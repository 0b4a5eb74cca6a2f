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

/** One call on the meter event stream: up to METER_STREAM_MAX_EVENTS events, named by our submission id. */
export interface MeterEventSubmission {
  /** Our id for this call (a UUID), stored on each event it carried and logged with Stripe's request id. */
  submissionId: string;
  events: MeterEventInput[];
}

/** Stripe takes at most this many events in one meter event stream call. */
export const METER_STREAM_MAX_EVENTS = 100;

export const SUBSCRIPTION_STATUSES = ['incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due', 'canceled', 'unpaid', 'paused'] as const;
export type SubscriptionStatus = (typeof SUBSCRIPTION_STATUSES)[number];

/** A Stripe subscription reduced to what we keep. Periods come from its items (API 2025-03-31+). */
export interface StripeSubscriptionState {
  id: string;
  stripeCustomerId: string;
  status: SubscriptionStatus;
  currentPeriodStart: Date | null;
  currentPeriodEnd: Date | null;
  cancelAtPeriodEnd: boolean;
  canceledAt: Date | null;
  trialEnd: Date | null;
  items: { id: string; priceId: string }[];
  metadata: Record<string, string>;
}

export const INVOICE_STATUSES = ['draft', 'open', 'paid', 'void', 'uncollectible'] as const;
export type InvoiceStatus = (typeof INVOICE_STATUSES)[number];

/** One line of a Stripe invoice, reduced to what we keep. Amounts in the currency's minor units. */
export interface StripeInvoiceLine {
  id: string;
  description: string | null;
  /** quantity_decimal when Stripe gives one (metered prices), else quantity; null when neither. */
  quantity: number | null;
  amount: number;
  /** The price the line is for (pricing.price_details.price since API 2025-03-31, price.id before). */
  priceId: string | null;
  periodStart: Date | null;
  periodEnd: Date | null;
}

/** A Stripe invoice (or an invoice preview) reduced to what we keep. */
export interface StripeInvoiceState {
  /** A preview's id is Stripe's placeholder (it is never stored). */
  id: string;
  stripeCustomerId: string;
  /** parent.subscription_details.subscription since API 2025-03-31, subscription before. */
  stripeSubscriptionId: string | null;
  number: string | null;
  status: InvoiceStatus;
  currency: string;
  amountDue: number;
  amountPaid: number;
  amountRemaining: number;
  subtotal: number;
  /** The sum of total_taxes (API 2025-03-31+), or tax before; 0 when there is none. */
  tax: number;
  total: number;
  periodStart: Date | null;
  periodEnd: Date | null;
  dueDate: Date | null;
  hostedInvoiceUrl: string | null;
  invoicePdf: string | null;
  created: Date;
  finalizedAt: Date | null;
  paidAt: Date | null;
  voidedAt: Date | null;
  markedUncollectibleAt: Date | null;
  /** Every line (fetched page by page when the invoice has more than its first page), at most MAX_INVOICE_LINES. */
  lines: StripeInvoiceLine[];
}

/** An invoice with more lines than this keeps its first ones only (its totals are Stripe's all the same). */
export const MAX_INVOICE_LINES = 1000;

export interface StripePort {
  readonly enabled: boolean;
  sendMeterEvent(input: MeterEventInput): Promise<void>;
  /**
   * Sends events on the high-throughput meter event stream (v2), authenticated with a short-lived
   * session token shared by every caller of this port. Stripe validates them later and reports
   * rejects through the v1.billing.meter.error_report_triggered event. Resolves with Stripe's request id.
   */
  sendMeterEventStream(submission: MeterEventSubmission): Promise<{ requestId: string | null }>;
  /** Idempotent per our customer id: a retried create returns the same Stripe customer. */
  createCustomer(input: { customerId: string; email: string; name: string }): Promise<string>;
  updateCustomer(stripeCustomerId: string, changes: { email?: string; name?: string }, idempotencyKey: string): Promise<void>;
  createSubscription(input: {
    idempotencyKey: string;
    stripeCustomerId: string;
    priceIds: string[];
    trialDays?: number;
    metadata: Record<string, string>;
  }): Promise<StripeSubscriptionState>;
  updateSubscriptionItems(
    subscriptionId: string,
    items: { id?: string; price?: string; deleted?: boolean }[],
    idempotencyKey: string,
  ): Promise<StripeSubscriptionState>;
  cancelSubscription(subscriptionId: string, atPeriodEnd: boolean, idempotencyKey: string): Promise<StripeSubscriptionState>;
  /** null when Stripe has no such subscription. */
  retrieveSubscription(subscriptionId: string): Promise<StripeSubscriptionState | null>;
  listSubscriptions(stripeCustomerId: string): Promise<StripeSubscriptionState[]>;
  /** null when Stripe has no such invoice (a deleted draft). */
  retrieveInvoice(invoiceId: string): Promise<StripeInvoiceState | null>;
  /** A customer's invoices, newest first, every page (each with its lines); `createdSince` bounds how far back. */
  listInvoices(stripeCustomerId: string, opts?: { createdSince?: Date }): Promise<StripeInvoiceState[]>;
  /** The invoice the subscription's current period will bring, as of now (invoices.createPreview). */
  previewInvoice(input: { stripeCustomerId: string; stripeSubscriptionId: string }): Promise<StripeInvoiceState>;
  /** A customer portal session (billing_portal.sessions.create): its URL is a bearer secret for the customer's billing. */
  createPortalSession(input: { stripeCustomerId: string; returnUrl: string; configuration?: string }): Promise<{ url: string; created: Date }>;
  /** A price, as a true-up prices late usage with it; null when Stripe has no such price. */
  retrievePrice(priceId: string): Promise<StripePriceState | null>;
  /**
   * An invoice item for the customer's next invoice (of the subscription when given): a true-up of
   * late usage. Idempotent by `idempotencyKey` (a retry makes no second item). Resolves with its id.
   */
  createInvoiceItem(input: InvoiceItemInput): Promise<string>;
}

/** What a true-up needs of a price (Stripe's Price object). */
export interface StripePriceState {
  id: string;
  currency: string;
  /** The product's id. */
  product: string;
  active: boolean;
  /** `per_unit` prices have a unit amount; `tiered` ones do not (a true-up of them is refused). */
  billingScheme: 'per_unit' | 'tiered';
  /** Minor units per unit, a decimal string (Stripe's unit_amount_decimal); null for tiered prices. */
  unitAmountDecimal: string | null;
  /** Units are divided before pricing (Stripe's transform_quantity). */
  transformQuantity: { divideBy: number; round: 'up' | 'down' } | null;
}

export interface InvoiceItemInput {
  idempotencyKey: string;
  stripeCustomerId: string;
  stripeSubscriptionId?: string;
  /** The price's terms, given as price_data: a metered (recurring) price cannot be an invoice item's price. */
  currency: string;
  product: string;
  unitAmountDecimal: string;
  /** Decimal string. */
  quantityDecimal: string;
  description: string;
  period: { start: Date; end: Date };
  metadata: Record<string, string>;
}

/** A failed Stripe call, classified for retry decisions. Never carries a secret. */
export class StripeCallError extends Error {
  constructor(
    message: string,
    /** Worth trying again later: network trouble, timeouts, 409 lock, 429, 5xx. */
    readonly retryable: boolean,
    readonly status?: number,
    readonly stripeCode?: string,
    /** Stripe's Request-Id, when an answer came. */
    readonly requestId?: string,
  ) {
    super(message);
    this.name = 'StripeCallError';
  }
}

const off = (): Promise<never> => Promise.reject(new StripeCallError('Stripe is not configured', false));

export const disabledStripe: StripePort = {
  enabled: false,
  sendMeterEvent: off,
  sendMeterEventStream: off,
  createCustomer: off,
  updateCustomer: off,
  createSubscription: off,
  updateSubscriptionItems: off,
  cancelSubscription: off,
  retrieveSubscription: off,
  listSubscriptions: off,
  retrieveInvoice: off,
  listInvoices: off,
  previewInvoice: off,
  createPortalSession: off,
  retrievePrice: off,
  createInvoiceItem: off,
};
