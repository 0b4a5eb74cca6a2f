import { z } from 'zod';
import { ERROR_STATUS } from '../errors/app-error';
import type { AuthKind, RouteDef } from './route';

type JsonSchema = Record<string, unknown>;

/** The request side of a schema (what a caller sends, before our transforms), or the response side. */
const toSchema = (s: z.ZodType, io: 'input' | 'output' = 'input'): JsonSchema => {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(s, { io, unrepresentable: 'any' }) as JsonSchema;
  return rest;
};

function successContent(r: RouteDef): Record<string, unknown> {
  if (r.path === '/metrics') return { content: { 'text/plain': { schema: { type: 'string' } } } };
  if (r.path === '/docs') return { content: { 'text/html': { schema: { type: 'string' } } } };
  if (r.method === 'delete' && r.path.startsWith('/api/plans')) return {};
  return { content: { 'application/json': { schema: toSchema(r.response, 'output') } } };
}

const SECURITY: Record<AuthKind, Record<string, string[]>[]> = {
  public: [],
  admin: [{ adminToken: [] }],
  metrics: [{ metricsToken: [] }, { adminToken: [] }],
  customer: [{ customerKey: [] }],
  stripe: [{ stripeSignature: [] }],
};

const errorsFor = (r: RouteDef): number[] => {
  const statuses = new Set<number>([500]);
  if (r.auth !== 'public') statuses.add(r.auth === 'stripe' ? 400 : 401).add(429);
  if (r.body || r.query) statuses.add(422);
  if (r.body) statuses.add(400).add(413).add(415);
  if (r.params) statuses.add(404);
  if (r.method !== 'get') statuses.add(409);
  if (r.path === '/ready' || r.auth !== 'public') statuses.add(503);
  if (r.path.includes('/subscriptions') && r.method !== 'get') statuses.add(502);
  return [...statuses].sort();
};

/**
 * OpenAPI 3.1, generated from the route table: every route the app serves is here, with the
 * same zod schemas that validate its requests.
 */
export function buildOpenApi(routes: readonly RouteDef[], version: string) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const path = r.path.replace(/:(\w+)/g, '{$1}');
    const parameters: unknown[] = [];
    for (const [where, schema] of [['path', r.params], ['query', r.query]] as const) {
      if (!schema) continue;
      const json = toSchema(schema) as { properties?: Record<string, JsonSchema>; required?: string[] };
      for (const [name, prop] of Object.entries(json.properties ?? {})) {
        parameters.push({ name, in: where, required: where === 'path' || (json.required ?? []).includes(name), schema: prop });
      }
    }
    const operation: Record<string, unknown> = {
      summary: r.summary,
      operationId: `${r.method}_${r.path.replace(/[/:]+/g, '_').replace(/^_|_$/g, '') || 'root'}`,
      tags: [r.path.split('/')[2] ?? r.path.split('/')[1] ?? 'service'],
      security: SECURITY[r.auth],
      ...(parameters.length ? { parameters } : {}),
      ...(r.rawBody
        ? { requestBody: { required: true, content: { 'application/json': { schema: { type: 'object', description: 'A Stripe event, exactly as Stripe sent it' } } } } }
        : r.body
          ? { requestBody: { required: true, content: { 'application/json': { schema: toSchema(r.body) } } } }
          : {}),
      responses: {
        [r.method === 'post' && !/retry|reconcile|webhooks/.test(r.path) ? '201' : r.method === 'delete' && r.path.startsWith('/api/plans') ? '204' : '200']: {
          description: 'Success',
          ...successContent(r),
        },
        ...Object.fromEntries(errorsFor(r).map((s) => [String(s), { $ref: `#/components/responses/Error${s}` }])),
        '4XX': { $ref: '#/components/responses/ClientError' },
      },
    };
    (paths[path] ??= {})[r.method] = operation;
  }

  const used = new Set(routes.flatMap(errorsFor));
  const codesByStatus = new Map<number, string[]>();
  for (const [code, status] of Object.entries(ERROR_STATUS)) {
    if (used.has(status)) codesByStatus.set(status, [...(codesByStatus.get(status) ?? []), code]);
  }

  return {
    openapi: '3.1.0',
    info: {
      title: 'Billing service',
      version,
      description: 'Customers, API keys, usage metering, plans, subscriptions and Stripe webhooks. Every error is one JSON envelope.',
      license: { name: 'UNLICENSED', identifier: 'UNLICENSED' },
    },
    servers: [{ url: '/' }],
    paths,
    components: {
      securitySchemes: {
        adminToken: { type: 'http', scheme: 'bearer', description: 'ADMIN_API_TOKEN (one of them)' },
        metricsToken: { type: 'http', scheme: 'bearer', description: 'METRICS_TOKEN' },
        customerKey: { type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'cust_<customerId>_<secret>' },
        stripeSignature: { type: 'apiKey', in: 'header', name: 'Stripe-Signature', description: 'Stripe’s signature over the raw body' },
      },
      schemas: {
        Error: {
          type: 'object',
          required: ['error'],
          additionalProperties: false,
          properties: {
            error: {
              type: 'object',
              required: ['code', 'message', 'requestId'],
              properties: {
                code: { type: 'string', enum: Object.keys(ERROR_STATUS) },
                message: { type: 'string' },
                requestId: { type: 'string' },
                details: {},
              },
            },
          },
        },
      },
      responses: {
        ...Object.fromEntries(
          [...codesByStatus.entries()].map(([status, codes]) => [
            `Error${status}`,
            {
              description: `Error: ${codes.join(', ')}`,
              content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
            },
          ]),
        ),
        ClientError: {
          description: 'Any other client error, in the same envelope',
          content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
        },
      },
    },
  };
}
