import { z } from 'zod';
import { iso, uuid } from '../../http/common-schemas';
import type { UsageEvent } from './usage-repository';
import { normalizeQuantity } from './quantity';

/** Stripe meters accept events at most 35 days old and 5 minutes ahead. */
export const MAX_AGE_MS = 35 * 24 * 3600 * 1000;
export const MAX_AHEAD_MS = 5 * 60 * 1000;

const idempotencyKey = z
  .string()
  .min(1, 'must not be empty')
  .max(255, 'must be at most 255 characters')
  .regex(/^[\x20-\x7e]+$/, 'must be printable ASCII');

const quantity = z
  .unknown()
  .transform((v, ctx) => {
    const r = normalizeQuantity(v);
    if (!r.ok) {
      ctx.addIssue({ code: 'custom', message: r.message });
      return z.NEVER;
    }
    return r.value;
  })
  // What the check above accepts, for the document and the clients generated from it.
  .meta({
    anyOf: [
      { type: 'number', minimum: 0 },
      { type: 'string', pattern: '^\\s*\\d+(\\.\\d+)?\\s*$' },
    ],
    description: 'Non-negative, at most 6 decimal places; a decimal string keeps every digit exactly',
  });

export function usageSchemas(metrics: readonly string[], maxBatch: number, now: () => number) {
  const occurredAt = z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date-time with a time zone' }).transform((s, ctx) => {
    const d = new Date(s);
    const t = now();
    if (d.getTime() < t - MAX_AGE_MS) ctx.addIssue({ code: 'custom', message: 'is more than 35 days in the past' });
    if (d.getTime() > t + MAX_AHEAD_MS) ctx.addIssue({ code: 'custom', message: 'is more than 5 minutes in the future' });
    return d;
  });

  const event = z.strictObject({
    metric: z.string().refine((m) => metrics.includes(m), { message: `must be one of: ${metrics.join(', ')}` }),
    quantity,
    occurred_at: occurredAt.optional(),
    idempotency_key: idempotencyKey,
  });

  const single = event.extend({ idempotency_key: idempotencyKey.optional() });
  const batch = z.strictObject({
    events: z.array(event).min(1, 'must hold at least one event').max(maxBatch, `must hold at most ${maxBatch} events`),
  });
  /** One event, or {events: [...]} all or nothing; each bad item of a batch is named by its index. */
  const body = z.union([single, batch]);
  const headers = z.object({
    'idempotency-key': idempotencyKey.optional().describe('The event’s idempotency key, instead of `idempotency_key` in the body (one event only)'),
  });

  return { event, single, batch, body, headers };
}

export type UsageSchemas = ReturnType<typeof usageSchemas>;

const periodBound = z.union([z.iso.date(), z.iso.datetime({ offset: true })]).transform((s) => new Date(s.length === 10 ? `${s}T00:00:00Z` : s));

export const usagePeriodQuery = z.strictObject({
  from: periodBound.optional(),
  to: periodBound.optional(),
  group_by: z.enum(['metric', 'day']).default('metric'),
});

export const reportQuery = z.strictObject({
  from: periodBound.optional(),
  to: periodBound.optional(),
  metric: z
    .string()
    .regex(/^[a-z][a-z0-9_]{0,62}$/, 'must be a metric name')
    .optional(),
  customer_id: uuid.optional(),
  group_by: z.enum(['customer', 'day']).default('customer'),
  format: z.enum(['json', 'csv']).default('json'),
});

export const usageEventJson = (e: UsageEvent) => ({
  id: e.id,
  metric: e.metric,
  quantity: e.quantity,
  occurred_at: iso(e.occurredAt),
  idempotency_key: e.idempotencyKey,
  received_at: iso(e.receivedAt),
});
