import { iso } from '../../http/common-schemas';
import { responses } from '../../http/response-schemas';
import { defineRoute } from '../../http/route';
import type { StripeWebhooksService } from './stripe-webhooks-service';

/** bodyLimit: WEBHOOK_BODY_LIMIT; a subscription event with many items outgrows the general JSON limit. */
export function stripeWebhooksRoutes(webhooks: StripeWebhooksService, bodyLimit: string) {
  return [
    defineRoute({
      method: 'post',
      path: '/api/webhooks/stripe',
      auth: 'stripe',
      summary: 'Stripe events, verified by their signature over the raw body; each applied once',
      response: responses.webhook,
      rawBody: true,
      bodyLimit,
      async handle({ body, req, ctx }, res) {
        const result = await webhooks.handle(body, req.get('stripe-signature'), ctx);
        res.json({ received: true, event_id: result.eventId, type: result.type, result: result.result });
      },
    }),
    defineRoute({
      method: 'get',
      path: '/api/reports/webhooks',
      auth: 'admin',
      summary: 'Stripe webhook processing: counts, and events that failed and wait for Stripe’s retry',
      response: responses.webhooks,
      async handle(_input, res) {
        const { counts, failing } = await webhooks.status();
        res.json({
          processed: counts.processed,
          failing: counts.failing,
          failing_events: failing.map((e) => ({
            id: e.id,
            type: e.type,
            object_id: e.objectId,
            attempts: e.attempts,
            last_error: e.lastError,
            received_at: iso(e.receivedAt),
          })),
        });
      },
    }),
  ];
}
