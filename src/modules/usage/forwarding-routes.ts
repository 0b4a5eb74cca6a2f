import { z } from 'zod';
import { iso, uuid } from '../../http/common-schemas';
import { json } from '../../http/response-schemas';
import { forwardingResponse, retriedResponse } from './usage-schemas';
import { defineRoute, type HandlersFor } from '../../http/route';
import type { ForwardingService } from './forwarding-service';
import type { FailedEvent } from './forwarding-repository';

/** A parked event as the reports answer it (failedEventResponse). */
export const failedEventBody = (f: FailedEvent) => ({
  id: f.id,
  customer_id: f.customerId,
  metric: f.metric,
  quantity: f.quantity,
  occurred_at: iso(f.occurredAt),
  attempts: f.attempts,
  last_error: f.lastError,
  stripe_submission_id: f.stripeSubmissionId,
});

const retryBody = z.strictObject({
  event_ids: z.array(uuid).min(1).max(1000).optional(),
});

export function forwardingRouteSpecs() {
  return {
    getReportsForwarding: defineRoute({
      method: 'get',
      path: '/api/reports/forwarding',
      auth: 'admin',
      summary: 'The usage outbox towards Stripe: backlog, failures, and the latest failed events',
      responses: {
        200: json(forwardingResponse, 'Counts by state, the oldest pending event and its age, the rate sent over the last minute, and recent failures'),
      },
    }),
    postReportsForwardingRetry: defineRoute({
      method: 'post',
      path: '/api/reports/forwarding/retry',
      auth: 'admin',
      summary: 'Queue failed usage events for forwarding again (all, or the ids given)',
      request: { body: retryBody },
      responses: { 200: json(retriedResponse, 'The events queued again') },
      auditAction: 'usage.forwarding_retry',
    }),
  };
}

export function forwardingHandlers(forwarding: ForwardingService): HandlersFor<ReturnType<typeof forwardingRouteSpecs>> {
  return {
    getReportsForwarding: async () => {
      const { stripeEnabled, stats, failures } = await forwarding.status();
      return {
        status: 200,
        body: {
          stripe_enabled: stripeEnabled,
          pending: stats.pending,
          due: stats.due,
          failed: stats.failed,
          local: stats.local,
          sent: stats.sent,
          oldest_pending_at: iso(stats.oldestPendingAt),
          oldest_pending_age_seconds: Math.round(stats.oldestPendingAgeSeconds * 1000) / 1000,
          sent_last_minute: stats.sentLastMinute,
          events_per_second: Math.round((stats.sentLastMinute / 60) * 10) / 10,
          recent_failures: failures.map(failedEventBody),
        },
      };
    },
    postReportsForwardingRetry: async ({ body, ctx }) => {
      const ids = await forwarding.retry(ctx, body.event_ids ?? null);
      return { status: 200, body: { requeued: ids.length, event_ids: ids } };
    },
  };
}
