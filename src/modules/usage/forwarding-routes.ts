import { z } from 'zod';
import { iso, uuid } from '../../http/common-schemas';
import { responses } from '../../http/response-schemas';
import { defineRoute } from '../../http/route';
import type { ForwardingService } from './forwarding-service';

const retryBody = z.strictObject({
  event_ids: z.array(uuid).min(1).max(1000).optional(),
});

export function forwardingRoutes(forwarding: ForwardingService) {
  return [
    defineRoute({
      method: 'get',
      path: '/api/reports/forwarding',
      auth: 'admin',
      summary: 'The usage outbox towards Stripe: backlog, failures, and the latest failed events',
      response: responses.forwarding,
      async handle(_input, res) {
        const { stripeEnabled, stats, failures } = await forwarding.status();
        res.json({
          stripe_enabled: stripeEnabled,
          pending: stats.pending,
          due: stats.due,
          failed: stats.failed,
          local: stats.local,
          sent: stats.sent,
          oldest_pending_at: iso(stats.oldestPendingAt),
          recent_failures: failures.map((f) => ({
            id: f.id,
            customer_id: f.customerId,
            metric: f.metric,
            quantity: f.quantity,
            occurred_at: iso(f.occurredAt),
            attempts: f.attempts,
            last_error: f.lastError,
          })),
        });
      },
    }),
    defineRoute({
      method: 'post',
      path: '/api/reports/forwarding/retry',
      auth: 'admin',
      summary: 'Queue failed usage events for forwarding again (all, or the ids given)',
      response: responses.retried,
      auditAction: 'usage.forwarding_retry',
      body: retryBody,
      async handle({ body, ctx }, res) {
        const ids = await forwarding.retry(ctx, body.event_ids ?? null);
        res.json({ requeued: ids.length, event_ids: ids });
      },
    }),
  ];
}
