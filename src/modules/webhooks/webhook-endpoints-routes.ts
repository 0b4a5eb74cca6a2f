import { idParams, iso } from '../../http/common-schemas';
import { json } from '../../http/response-schemas';
import { defineRoute, type HandlersFor } from '../../http/route';
import { UUID_RE } from '../../lib/ids';
import { decodeCursor, page } from '../../lib/pagination';
import {
  createdWebhookEndpointResponse,
  createWebhookEndpointBody,
  listWebhookEndpointsQuery,
  rotatedSecretResponse,
  rotateSecretBody,
  updateWebhookEndpointBody,
  webhookEndpointJson,
  webhookEndpointResponse,
  webhookEndpointsResponse,
} from './webhook-endpoints-schemas';
import { DEFAULT_ROTATION_GRACE_SECONDS, type WebhookEndpointsService } from './webhook-endpoints-service';

export function webhookEndpointsRouteSpecs() {
  return {
    postWebhookEndpoints: defineRoute({
      method: 'post',
      path: '/api/webhook-endpoints',
      auth: 'admin',
      noStore: true,
      summary: 'Create a webhook endpoint and its signing secret (shown this once)',
      description:
        '`events`: event types, `<object>.*` (every type of one object) or `*`. The URL must be https (http only where ' +
        'WEBHOOK_ALLOW_HTTP allows it), carry no credentials, and point at public addresses only (422 otherwise).',
      request: { body: createWebhookEndpointBody },
      responses: { 201: json(createdWebhookEndpointResponse, 'Created; `secret` is shown this once and never again') },
      auditAction: 'webhook_endpoint.create',
    }),
    getWebhookEndpoints: defineRoute({
      method: 'get',
      path: '/api/webhook-endpoints',
      auth: 'admin',
      summary: 'List webhook endpoints, newest first',
      request: { query: listWebhookEndpointsQuery },
      responses: { 200: json(webhookEndpointsResponse, 'A page of endpoints; `next_cursor` fetches the next') },
    }),
    getWebhookEndpointsById: defineRoute({
      method: 'get',
      path: '/api/webhook-endpoints/:id',
      auth: 'admin',
      summary: 'Get a webhook endpoint',
      request: { params: idParams },
      responses: { 200: json(webhookEndpointResponse, 'The endpoint') },
    }),
    patchWebhookEndpointsById: defineRoute({
      method: 'patch',
      path: '/api/webhook-endpoints/:id',
      auth: 'admin',
      summary: 'Change a webhook endpoint’s URL, events or description, or disable or enable it',
      description: '`disabled: false` enables it again and clears its failure record (`failing_since`, `disabled_reason`).',
      request: { params: idParams, body: updateWebhookEndpointBody },
      responses: { 200: json(webhookEndpointResponse, 'The endpoint as changed') },
      auditAction: 'webhook_endpoint.update',
    }),
    deleteWebhookEndpointsById: defineRoute({
      method: 'delete',
      path: '/api/webhook-endpoints/:id',
      auth: 'admin',
      summary: 'Delete a webhook endpoint, with its secrets and deliveries',
      request: { params: idParams },
      responses: { 204: { description: 'Deleted' } },
      auditAction: 'webhook_endpoint.delete',
    }),
    postWebhookEndpointsByIdRotateSecret: defineRoute({
      method: 'post',
      path: '/api/webhook-endpoints/:id/rotate-secret',
      auth: 'admin',
      noStore: true,
      summary: 'Give a webhook endpoint a new signing secret (shown this once); the previous one keeps signing for a grace period',
      request: { params: idParams, body: rotateSecretBody },
      responses: {
        200: json(rotatedSecretResponse, 'The new `secret`, shown this once; the previous one signs too until `previous_secret_expires_at`'),
      },
      auditAction: 'webhook_endpoint.rotate_secret',
    }),
  };
}

export function webhookEndpointsHandlers(endpoints: WebhookEndpointsService): HandlersFor<ReturnType<typeof webhookEndpointsRouteSpecs>> {
  return {
    postWebhookEndpoints: async ({ body, ctx }) => {
      const { endpoint, secret } = await endpoints.create(ctx, { url: body.url, events: body.events, description: body.description ?? null });
      return { status: 201, body: { webhook_endpoint: webhookEndpointJson(endpoint), secret } };
    },
    getWebhookEndpoints: async ({ query }) => {
      const rows = await endpoints.list({ beforeId: decodeCursor(query.cursor, (id) => UUID_RE.test(id)), limit: query.limit + 1 });
      const { items, nextCursor } = page(rows, query.limit);
      return { status: 200, body: { data: items.map(webhookEndpointJson), next_cursor: nextCursor } };
    },
    getWebhookEndpointsById: async ({ params }) => {
      return { status: 200, body: { webhook_endpoint: webhookEndpointJson(await endpoints.get(params.id)) } };
    },
    patchWebhookEndpointsById: async ({ params, body, ctx }) => {
      const updated = await endpoints.update(ctx, params.id, body);
      return { status: 200, body: { webhook_endpoint: webhookEndpointJson(updated) } };
    },
    deleteWebhookEndpointsById: async ({ params, ctx }) => {
      await endpoints.remove(ctx, params.id);
      return { status: 204 };
    },
    postWebhookEndpointsByIdRotateSecret: async ({ params, body, ctx }) => {
      const r = await endpoints.rotateSecret(ctx, params.id, body.grace_period ?? DEFAULT_ROTATION_GRACE_SECONDS);
      return {
        status: 200,
        body: { webhook_endpoint: webhookEndpointJson(r.endpoint), secret: r.secret, previous_secret_expires_at: iso(r.previousExpiresAt) },
      };
    },
  };
}
