import { idParams } from '../../http/common-schemas';
import { json } from '../../http/response-schemas';
import { defineRoute, type HandlersFor } from '../../http/route';
import { isBigserialId } from '../../lib/ids';
import { decodeCursor, page } from '../../lib/pagination';
import { eventParams } from '../events/events-schemas';
import type { DeliveryService } from './delivery-service';
import {
  attemptJson,
  attemptResultJson,
  attemptsResponse,
  deliveryJson,
  listAttemptsQuery,
  resendBody,
  resendResponse,
  testResponse,
} from './webhook-deliveries-schemas';

export function webhookDeliveriesRouteSpecs() {
  return {
    postWebhookEndpointsTest: defineRoute({
      method: 'post',
      path: '/api/webhook-endpoints/:id/test',
      auth: 'admin',
      summary: 'Send a webhook_endpoint.test event to this endpoint now and answer with the outcome',
      description: 'The event goes to this endpoint alone. A failed attempt is retried on the normal schedule.',
      request: { params: idParams },
      responses: { 200: json(testResponse, 'The attempt made (delivered or failed) and the delivery as it now stands') },
      auditAction: 'webhook_endpoint.test',
    }),
    getWebhookEndpointsDeliveries: defineRoute({
      method: 'get',
      path: '/api/webhook-endpoints/:id/deliveries',
      auth: 'admin',
      summary: "An endpoint's delivery attempts, newest first",
      request: { params: idParams, query: listAttemptsQuery },
      responses: { 200: json(attemptsResponse, 'A page of attempts; `next_cursor` fetches the next') },
    }),
    postEventsResend: defineRoute({
      method: 'post',
      path: '/api/events/:id/resend',
      auth: 'admin',
      summary: 'Deliver an event again: to one endpoint, or to every enabled endpoint that wants it',
      request: { params: eventParams, body: resendBody },
      responses: { 200: json(resendResponse, 'The deliveries queued') },
      auditAction: 'event.resend',
    }),
  };
}

export function webhookDeliveriesHandlers(deliveries: DeliveryService): HandlersFor<ReturnType<typeof webhookDeliveriesRouteSpecs>> {
  return {
    postWebhookEndpointsTest: async ({ params, ctx }) => {
      const r = await deliveries.test(ctx, params.id);
      return { status: 200, body: { event_id: r.eventId, delivery: deliveryJson(r.delivery), attempt: attemptResultJson(r.attempt) } };
    },
    getWebhookEndpointsDeliveries: async ({ params, query }) => {
      const rows = await deliveries.listAttempts(params.id, { beforeId: decodeCursor(query.cursor, isBigserialId), limit: query.limit + 1 });
      const { items, nextCursor } = page(rows, query.limit);
      return { status: 200, body: { data: items.map(attemptJson), next_cursor: nextCursor } };
    },
    postEventsResend: async ({ params, body, ctx }) => {
      const queued = await deliveries.resend(ctx, params.id, body.endpoint_id ?? null);
      return { status: 200, body: { event_id: params.id, deliveries: queued.map(deliveryJson) } };
    },
  };
}
