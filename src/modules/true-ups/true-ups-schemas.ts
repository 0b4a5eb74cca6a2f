import { z } from 'zod';
import { iso, isoDateTime, uuid } from '../../http/common-schemas';
import { id, nullableTimestamp, obj, timestamp } from '../../http/response-schemas';
import type { TrueUp, TrueUpTotal } from './true-ups-repository';

/*
 * What the late-usage report and its retry answer: the contract the CLI reads. A true-up is the late
 * usage of one bundle and metric (docs/STRIPE.md, Late usage).
 */
export const TRUE_UP_STATES = ['pending', 'sent', 'failed', 'local'] as const;

/** A date (its midnight, UTC) or a date-time with a time zone, as the usage report takes them. */
const bound = z.union([z.iso.date(), isoDateTime()]).transform((s) => new Date(s.length === 10 ? `${s}T00:00:00Z` : s));

export const lateReportQuery = z.strictObject({
  from: bound.optional().describe('True-ups recorded (created_at) at or after this date or date-time'),
  to: bound.optional().describe('True-ups recorded before this date or date-time'),
  customer_id: uuid.optional(),
  metric: z
    .string()
    .regex(/^[a-z][a-z0-9_]{0,62}$/, 'must be a metric name')
    .optional(),
  state: z.enum(TRUE_UP_STATES).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(200).optional().describe('A page’s `next_cursor`: the true-ups after it (older)'),
  format: z.enum(['json', 'csv']).default('json').describe('csv: every true-up the filters match (limit and cursor page the JSON only)'),
});

export const lateRetryBody = z.strictObject({
  ids: z.array(uuid).min(1).max(1000).optional().describe('The failed true-ups to queue again; none: every failed one'),
});

const trueUp = obj({
  id,
  customer_id: id,
  bundle_id: id,
  metric: z.string(),
  quantity: z.string().describe('The late usage, a decimal string'),
  events: z.number().int().describe('How many late events it sums'),
  occurred_from: timestamp,
  occurred_to: timestamp,
  state: z
    .enum(TRUE_UP_STATES)
    .describe('pending: waiting for Stripe; sent: an invoice item was made; failed: see last_error; local: Stripe off, the report alone'),
  attempts: z.number().int(),
  last_error: z.string().nullable(),
  stripe_price_id: z.string().nullable().describe('The metered price it was priced from'),
  stripe_invoice_item_id: z.string().nullable(),
  created_at: timestamp,
  sent_at: nullableTimestamp,
});

export const lateReportResponse = obj({
  data: z.array(trueUp),
  next_cursor: z.string().nullable(),
  totals: z
    .array(obj({ metric: z.string(), quantity: z.string(), events: z.number().int() }))
    .describe('Per metric, over every true-up the filters match (all pages)'),
});

export const lateRetryResponse = obj({ requeued: z.number().int(), ids: z.array(id) });

export const trueUpJson = (t: TrueUp) => ({
  id: t.id,
  customer_id: t.customerId,
  bundle_id: t.bundleId,
  metric: t.metric,
  quantity: t.quantity,
  events: t.events,
  occurred_from: t.occurredFrom.toISOString(),
  occurred_to: t.occurredTo.toISOString(),
  state: t.state,
  attempts: t.attempts,
  last_error: t.lastError,
  stripe_price_id: t.stripePriceId,
  stripe_invoice_item_id: t.stripeInvoiceItemId,
  created_at: t.createdAt.toISOString(),
  sent_at: iso(t.sentAt),
});

export const totalJson = (t: TrueUpTotal) => ({ metric: t.metric, quantity: t.quantity, events: t.events });

const CSV_COLUMNS = [
  'id',
  'customer_id',
  'bundle_id',
  'metric',
  'quantity',
  'events',
  'occurred_from',
  'occurred_to',
  'state',
  'attempts',
  'last_error',
  'stripe_price_id',
  'stripe_invoice_item_id',
  'created_at',
  'sent_at',
] as const;

/**
 * RFC 4180: a field with a comma, a quote or a line break is quoted, its quotes doubled. last_error
 * holds Stripe's words: text a spreadsheet would run as a formula (= + - @ first) gets an apostrophe.
 */
const field = (v: string | number | null) => {
  let s = v === null ? '' : String(v);
  if (typeof v === 'string' && /^[=+\-@\t\r]/.test(v)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

export const trueUpsCsv = (rows: readonly TrueUp[]) =>
  [CSV_COLUMNS.join(','), ...rows.map((t) => ((j) => CSV_COLUMNS.map((c) => field(j[c])).join(','))(trueUpJson(t)))].join('\n') + '\n';
