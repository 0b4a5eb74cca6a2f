import type { InvoiceStatus } from '../../stripe/stripe-port';

/**
 * Our copy of a Stripe invoice, as the invoices module hands it out (and the shapes other modules
 * read: the Stripe webhooks read what an apply did). Amounts in the currency's minor units.
 */
export interface InvoiceLine {
  description: string | null;
  quantity: number | null;
  amount: number;
  price: string | null;
  /** The usage metric the price bills (a plan's metered_prices), or null. */
  metric: string | null;
  /** ISO date-times, as the jsonb column keeps them. */
  period: { start: string | null; end: string | null };
}

/** What Stripe says of the invoice: everything a re-read may change. */
export interface InvoiceContent {
  subscriptionId: string | null;
  stripeSubscriptionId: string | null;
  number: string | null;
  status: InvoiceStatus;
  currency: string;
  amountDue: number;
  amountPaid: number;
  amountRemaining: number;
  subtotal: number;
  tax: number;
  total: number;
  periodStart: Date | null;
  periodEnd: Date | null;
  dueDate: Date | null;
  hostedInvoiceUrl: string | null;
  invoicePdf: string | null;
  lines: InvoiceLine[];
  stripeCreatedAt: Date;
  finalizedAt: Date | null;
  paidAt: Date | null;
  voidedAt: Date | null;
  markedUncollectibleAt: Date | null;
}

export interface Invoice extends InvoiceContent {
  id: string;
  customerId: string;
  stripeInvoiceId: string;
  /** When the state we hold was read from Stripe. */
  stripeStateAt: Date;
  createdAt: Date;
  updatedAt: Date;
}

/**
 * What applying Stripe's state of an invoice did. `unchanged` with a reason: the state was refused
 * (read earlier than ours, or a status moving back); without one: it held nothing new.
 */
export type InvoiceApplied =
  | { outcome: 'inserted'; invoiceId: string; from: null; to: InvoiceStatus }
  | { outcome: 'updated'; invoiceId: string; from: InvoiceStatus; to: InvoiceStatus }
  | { outcome: 'unchanged'; invoiceId: string; from: InvoiceStatus; to: InvoiceStatus; reason?: string }
  | { outcome: 'deleted'; invoiceId: string; from: InvoiceStatus; to: null }
  | { outcome: 'ignored'; invoiceId: string | null; reason: string };
