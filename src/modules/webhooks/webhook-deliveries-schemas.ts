import { z } from 'zod';
import { iso, uuid } from '../../http/common-schemas';
import { id, nullableTimestamp, obj, page, timestamp } from '../../http/response-schemas';
import { paginationQuery } from '../../lib/pagination';
import type { AttemptEntry, Delivery } from './delivery-repository';
import type { SendResult } from './delivery-sender';

export const listAttemptsQuery = z.strictObject({ ...paginationQuery });

export const resendBody = z.strictObject({
  endpoint_id: uuid.optional(),
});

const outcome = z.enum(['delivered', 'failed']);

const delivery = obj({
  id,
  event_id: z.string(),
  endpoint_id: z.string(),
  state: z.enum(['pending', 'delivered', 'failed']),
  attempts: z.number().int(),
  next_attempt_at: nullableTimestamp.describe('When it is attempted next; null once delivered or failed'),
  last_attempt_at: nullableTimestamp,
  last_status: z.number().int().nullable(),
  last_error: z.string().nullable(),
  delivered_at: nullableTimestamp,
  created_at: timestamp,
});

export const deliveryJson = (d: Delivery) => ({
  id: d.id,
  event_id: d.eventId,
  endpoint_id: d.endpointId,
  state: d.state,
  attempts: d.attempts,
  next_attempt_at: iso(d.nextAttemptAt),
  last_attempt_at: iso(d.lastAttemptAt),
  last_status: d.lastStatus,
  last_error: d.lastError,
  delivered_at: iso(d.deliveredAt),
  created_at: iso(d.createdAt),
});

export const testResponse = obj({
  event_id: z.string(),
  delivery,
  attempt: obj({
    outcome,
    status: z.number().int().nullable().describe("The receiver's HTTP status; null when no answer came"),
    duration_ms: z.number().int(),
    error: z.string().nullable(),
  }),
});

export const attemptResultJson = (r: SendResult) => ({ outcome: r.outcome, status: r.status, duration_ms: r.durationMs, error: r.error });

export const attemptsResponse = page(
  obj({
    id,
    event_id: z.string(),
    event_type: z.string(),
    attempted_at: timestamp,
    outcome,
    status: z.number().int().nullable(),
    duration_ms: z.number().int(),
    response_body: z.string().nullable().describe("The first 1 kB of the receiver's answer"),
    error: z.string().nullable(),
  }),
);

export const attemptJson = (a: AttemptEntry) => ({
  id: a.id,
  event_id: a.eventId,
  event_type: a.eventType,
  attempted_at: iso(a.attemptedAt),
  outcome: a.outcome,
  status: a.status,
  duration_ms: a.durationMs,
  response_body: a.responseBody,
  error: a.error,
});

export const resendResponse = obj({
  event_id: z.string(),
  deliveries: z.array(delivery).describe('The deliveries queued: due now, with a fresh retry schedule'),
});
