import { z } from 'zod';
import { iso } from '../../http/common-schemas';
import { nullableTimestamp, obj, page, timestamp } from '../../http/response-schemas';
import { UUID_RE } from '../../lib/ids';
import { decodeCursor, encodeCursor } from '../../lib/pagination';
import { INVOICE_STATUSES, type InvoiceStatus } from '../../stripe/stripe-port';
import type { Invoice } from './invoice-types';

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
  computed_at: timestamp.describe(
    'When Stripe was asked (its previews are kept per customer for UPCOMING_INVOICE_CACHE), or when the estimate was computed (on every call)',
  ),
});

/** An invoice as every answer shows it. */
export const invoiceJson = (i: Invoice) => ({
  id: i.id,
  stripe_invoice_id: i.stripeInvoiceId,
  customer_id: i.customerId,
  subscription_id: i.subscriptionId,
  number: i.number,
  status: i.status,
  currency: i.currency,
  amount_due: i.amountDue,
  amount_paid: i.amountPaid,
  amount_remaining: i.amountRemaining,
  subtotal: i.subtotal,
  tax: i.tax,
  total: i.total,
  period: { start: iso(i.periodStart), end: iso(i.periodEnd) },
  due_date: iso(i.dueDate),
  hosted_invoice_url: i.hostedInvoiceUrl,
  invoice_pdf: i.invoicePdf,
  lines: i.lines.map((l) => ({ ...l, period: { ...l.period } })),
  created_at: iso(i.stripeCreatedAt),
  finalized_at: iso(i.finalizedAt),
  paid_at: iso(i.paidAt),
  voided_at: iso(i.voidedAt),
  marked_uncollectible_at: iso(i.markedUncollectibleAt),
  updated_at: iso(i.updatedAt),
});

/*
 * Requests. The cursor is opaque to callers: the last invoice's Stripe created time and our id (the
 * list's order), so a page never repeats or skips one however many share a second.
 */
const CURSOR_RE = new RegExp(`^(\\d{1,15})\\.(${UUID_RE.source.slice(1, -1)})$`);

export const invoiceCursor = {
  encode: (i: Invoice): string => encodeCursor(`${i.stripeCreatedAt.getTime()}.${i.id}`),
  decode(cursor: string | undefined): { createdAt: Date; id: string } | undefined {
    const raw = decodeCursor(cursor, (s) => CURSOR_RE.test(s));
    if (raw === undefined) return undefined;
    const [, ms, id] = CURSOR_RE.exec(raw)!;
    return { createdAt: new Date(Number(ms)), id: id! };
  },
};

const CUSTOMER_STATUSES = INVOICE_STATUSES.filter((s) => s !== 'draft') as [Exclude<InvoiceStatus, 'draft'>, ...Exclude<InvoiceStatus, 'draft'>[]];
const pageQuery = {
  cursor: z.string().max(200).optional().describe('A page’s `next_cursor`: the invoices after it'),
  limit: z.coerce.number().int().min(1).max(100).default(20),
};
/** The customer's own list: drafts are never shown, so they cannot be asked for. */
export const customerInvoicesQuery = z.strictObject({ ...pageQuery, status: z.enum(CUSTOMER_STATUSES).optional() });
export const adminInvoicesQuery = z.strictObject({ ...pageQuery, status: z.enum(INVOICE_STATUSES).optional() });

/** Stripe's invoice ids: in_ and letters and digits. */
export const STRIPE_INVOICE_ID_RE = /^in_[A-Za-z0-9]{1,250}$/;

/**
 * `:id` is our id (a UUID) or Stripe's (in_…); anything else names no invoice: 404, as for every id
 * in a path. This refuses the literal `upcoming` too: GET /api/invoices/upcoming is its own route,
 * registered before this one (express gives a request to the first route that matches).
 */
export const invoiceParams = z.object({
  id: z
    .string()
    .regex(
      new RegExp(`^(?:${UUID_RE.source.slice(1, -1)}|${STRIPE_INVOICE_ID_RE.source.slice(1, -1)})$`),
      'must be an invoice id (a UUID) or a Stripe invoice id (in_…)',
    )
    .describe('Our id for the invoice (a UUID) or Stripe’s (in_…)'),
});

export const invoiceRef = (id: string): { id: string } | { stripeInvoiceId: string } => (UUID_RE.test(id) ? { id } : { stripeInvoiceId: id });
