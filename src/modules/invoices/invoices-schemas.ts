import { z } from 'zod';
import { nullableTimestamp, obj, page, timestamp } from '../../http/response-schemas';
import { INVOICE_STATUSES } from '../../stripe/stripe-port';

/*
 * What the invoice routes answer: the contract the client package, the CLI and the console read.
 * Amounts are integers in the currency's minor units (4900: 49.00 USD), as Stripe gives them.
 */

const period = obj({ start: nullableTimestamp, end: nullableTimestamp });

/** One line of an invoice (or of the period's charges so far). */
export const invoiceLineResponse = obj({
  description: z.string().nullable(),
  /** Decimal for a metered price's line; null for a line without a quantity. */
  quantity: z.number().nullable(),
  amount: z.number().int(),
  /** The Stripe price the line is for. */
  price: z.string().nullable(),
  /** The usage metric the price bills (the plan's metered_prices), or null (a base fee, a one-off item). */
  metric: z.string().nullable(),
  period,
});

export const invoiceResponseItem = obj({
  id: z.string().describe('Our id for the invoice'),
  stripe_invoice_id: z.string(),
  customer_id: z.string(),
  subscription_id: z.string().nullable(),
  number: z.string().nullable().describe('Null until the invoice is finalized'),
  status: z.enum(INVOICE_STATUSES),
  currency: z.string(),
  amount_due: z.number().int(),
  amount_paid: z.number().int(),
  amount_remaining: z.number().int(),
  subtotal: z.number().int(),
  tax: z.number().int(),
  total: z.number().int(),
  period,
  due_date: nullableTimestamp,
  hosted_invoice_url: z.string().nullable().describe('Stripe’s page to view and pay the invoice (null for a draft)'),
  invoice_pdf: z.string().nullable(),
  lines: z.array(invoiceLineResponse),
  created_at: timestamp.describe('When Stripe created the invoice'),
  finalized_at: nullableTimestamp,
  paid_at: nullableTimestamp,
  voided_at: nullableTimestamp,
  marked_uncollectible_at: nullableTimestamp,
  updated_at: timestamp.describe('When our copy last changed'),
});

export const invoiceResponse = obj({ invoice: invoiceResponseItem });
export const invoicesResponse = page(invoiceResponseItem);

/** GET /api/invoices/upcoming: the charges the current period will bring, as of `computed_at`. */
export const upcomingInvoiceResponse = obj({
  /** true: computed here from the plan's local_pricing and the daily totals (Stripe off); false: Stripe's invoice preview. */
  estimate: z.boolean(),
  source: z.enum(['stripe', 'local']),
  customer_id: z.string(),
  subscription_id: z.string().nullable(),
  /** Null only for an estimate of a plan without local pricing (then every amount is 0). */
  currency: z.string().nullable(),
  period,
  subtotal: z.number().int(),
  tax: z.number().int(),
  total: z.number().int(),
  amount_due: z.number().int(),
  lines: z.array(invoiceLineResponse),
  computed_at: timestamp.describe('When Stripe was asked (or the estimate computed): answers are kept for UPCOMING_INVOICE_CACHE'),
});
