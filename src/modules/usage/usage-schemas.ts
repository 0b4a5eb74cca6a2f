import { z } from 'zod';
import { ISO_DATE_TIME, iso, isoDateTime as isoDateTimeSchema, uuid } from '../../http/common-schemas';
import type { UsageEvent } from './usage-repository';
import { normalizeQuantity } from './quantity';
import { id, nullableTimestamp, obj, timestamp } from '../../http/response-schemas';

import { MAX_AGE_MS, MAX_AHEAD_MS } from './usage-window';

export { MAX_AGE_MS, MAX_AHEAD_MS };

const PRINTABLE = /^[\x20-\x7e]+$/;
const idempotencyKey = z.string().min(1, 'must not be empty').max(255, 'must be at most 255 characters').regex(PRINTABLE, 'must be printable ASCII');

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
  const isoDateTime = isoDateTimeSchema('must be an ISO 8601 date-time with a time zone');
  const occurredAt = isoDateTime.transform((s, ctx) => {
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

  /*
   * The same checks written out for a body that passes them: what `body` gives for it, or
   * undefined for anything else (the schema then decides, and words the errors). zod tries the
   * one-event shape first and walks each event through its checks; this reads each field once.
   * tests/unit/usage-fast-body.test.ts holds the two to the same answers on generated bodies. Why
   * and when to delete it (the gain, measured): docs/decisions/hand-check-before-zod.md.
   */
  const dateTime = ISO_DATE_TIME;
  type Event = z.output<typeof event>;
  const fastEvent = (v: unknown, keyRequired: boolean): Event | undefined => {
    if (typeof v !== 'object' || v === null || Object.getPrototypeOf(v) !== Object.prototype) return undefined;
    const o = v as Record<string, unknown>;
    let fields = 0;
    const { metric, quantity: q, occurred_at: at, idempotency_key: key } = o;
    if (typeof metric !== 'string' || !metrics.includes(metric)) return undefined;
    fields++;
    const amount = normalizeQuantity(q);
    if (!amount.ok) return undefined;
    fields++;
    let occurred: Date | undefined;
    if (at !== undefined) {
      if (typeof at !== 'string' || !dateTime.test(at)) return undefined;
      occurred = new Date(at);
      const t = now();
      if (occurred.getTime() < t - MAX_AGE_MS || occurred.getTime() > t + MAX_AHEAD_MS) return undefined;
      fields++;
    }
    if (key !== undefined) {
      if (typeof key !== 'string' || key.length > 255 || !PRINTABLE.test(key)) return undefined;
      fields++;
    } else if (keyRequired) return undefined;
    // Strict: no other field, and none of these given as undefined (JSON has no undefined anyway).
    if (Object.keys(o).length !== fields) return undefined;
    const out = { metric, quantity: amount.value } as Event;
    if (occurred) out.occurred_at = occurred;
    if (key !== undefined) out.idempotency_key = key;
    return out;
  };
  const fastBody = (raw: unknown): z.output<typeof body> | undefined => {
    if (typeof raw !== 'object' || raw === null || Object.getPrototypeOf(raw) !== Object.prototype) return undefined;
    const events = (raw as { events?: unknown }).events;
    if (events === undefined) return fastEvent(raw, false);
    if (!Array.isArray(events) || events.length < 1 || events.length > maxBatch || Object.keys(raw).length !== 1) return undefined;
    const out: Event[] = new Array<Event>(events.length);
    for (let i = 0; i < events.length; i++) {
      const e = fastEvent(events[i], true);
      if (!e) return undefined;
      out[i] = e;
    }
    return { events: out };
  };

  return { event, single, batch, body, headers, fastBody };
}

export type UsageSchemas = ReturnType<typeof usageSchemas>;

const periodBound = z.union([z.iso.date(), isoDateTimeSchema()]).transform((s) => new Date(s.length === 10 ? `${s}T00:00:00Z` : s));

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

const usageEvent = obj({
  id,
  metric: z.string(),
  quantity: z.string(),
  occurred_at: timestamp,
  idempotency_key: z.string(),
  received_at: timestamp,
  replayed: z.boolean(),
});

const total = obj({
  customer_id: id.optional(),
  day: z.iso.date().optional(),
  metric: z.string().optional(),
  quantity: z.string(),
  events: z.number().int(),
});

export const usagePostedResponse = z.union([
  obj({ event: usageEvent }),
  obj({ created: z.number().int(), replayed: z.number().int(), events: z.array(obj({ id, idempotency_key: z.string(), replayed: z.boolean() })) }),
]);
/** A metered limit now (entitlement-rules.ts, meteredStatus): what an instance should do with its allowance. */
export const meteredStatusResponse = obj({
  allowance: z.number().int().describe('The allowance for the billing period'),
  used: z.string().describe('The period’s usage (a decimal string)'),
  percent: z.number().nullable().describe('used / allowance in percent, two decimals, rounded down; null when the allowance is 0'),
  thresholds: z.array(z.number().int()).describe('The percentages of the allowance at which the customer is told'),
  thresholds_crossed: z.array(z.number().int()).describe('Those reached this period'),
  overage: z.union([z.enum(['block', 'allow']), z.number()]).describe('What happens past the allowance: block, allow, or a tolerance (a multiple, 1.1-3)'),
  blocks_at: z.string().nullable().describe('The quantity at which the policy stops the metered action (null: allow, never)'),
  state: z.enum(['ok', 'warn', 'over_tolerated', 'blocked']),
});

export const totalsResponse = obj({
  customer_id: id,
  from: timestamp,
  to: timestamp,
  group_by: z.enum(['metric', 'day']),
  totals: z.array(total),
  billing_period: obj({ start: timestamp, end: timestamp }).describe('The billing period the allowances are for, whatever from and to are'),
  metered: z.record(z.string(), meteredStatusResponse).describe('Each metered limit (a limit named after a metric) over the billing period'),
});
export const reportResponse = obj({ from: timestamp, to: timestamp, group_by: z.enum(['customer', 'day']), rows: z.array(total) });

/** An event the outbox gave up on (parked), as the reports list it. */
export const failedEventResponse = obj({
  id,
  customer_id: id,
  metric: z.string(),
  quantity: z.string(),
  occurred_at: timestamp,
  attempts: z.number().int(),
  last_error: z.string().nullable(),
  stripe_submission_id: id.nullable(),
});

export const forwardingResponse = obj({
  stripe_enabled: z.boolean(),
  pending: z.number().int(),
  due: z.number().int(),
  failed: z.number().int(),
  local: z.number().int(),
  sent: z.number().int(),
  oldest_pending_at: nullableTimestamp,
  oldest_pending_age_seconds: z.number().nonnegative(),
  sent_last_minute: z.number().int(),
  events_per_second: z.number().nonnegative(),
  recent_failures: z.array(failedEventResponse),
});
export const retriedResponse = obj({ requeued: z.number().int(), event_ids: z.array(id) });
