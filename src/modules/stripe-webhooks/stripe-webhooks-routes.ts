import { iso } from '../../http/common-schemas';
import { json } from '../../http/response-schemas';
import { webhookResponse, webhooksResponse } from './stripe-webhooks-schemas';
import { defineRoute, type HandlersFor } from '../../http/route';
import type { StripeWebhooksService } from './stripe-webhooks-service';

/** bodyLimit: WEBHOOK_BODY_LIMIT; a subscription event with many items outgrows the general JSON limit. */
export function stripeWebhooksRouteSpecs(bodyLimit: string) {
  return {
    postWebhooksStripe: defineRoute({
      method: 'post',
      path: '/api/webhooks/stripe',
      auth: 'stripe',
      summary: 'Stripe events, verified by their signature over the raw body; each applied once',
      responses: { 200: json(webhookResponse, 'Received: processed now, a duplicate of one processed, or ignored (not ours, or not a type we act on)') },
      errors: ['BAD_REQUEST', 'BAD_GATEWAY'],
      rawBody: true,
      bodyLimit,
    }),
    getReportsWebhooks: defineRoute({
      method: 'get',
      path: '/api/reports/webhooks',
      auth: 'admin',
      summary: 'Stripe webhook processing: counts, and events that failed and wait for Stripe’s retry',
      responses: { 200: json(webhooksResponse, 'Counts, and the failing events with their last error') },
    }),
  };
}

export function stripeWebhooksHandlers(webhooks: StripeWebhooksService): HandlersFor<ReturnType<typeof stripeWebhooksRouteSpecs>> {
  return {
    postWebhooksStripe: async ({ body, req, ctx }) => {
      const result = await webhooks.handle(body, req.get('stripe-signature'), ctx);
      return { status: 200, body: { received: true, event_id: result.eventId, type: result.type, result: result.result } };
    },
    getReportsWebhooks: async () => {
      const { counts, failing } = await webhooks.status();
      return {
        status: 200,
        body: {
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
        },
      };
    },
  };
}
