import { z } from 'zod';
import { ERROR_STATUS } from '../errors/app-error';
import { errorCodes, type AuthKind, type RouteContract } from './route';

type JsonSchema = Record<string, unknown>;

/** The request side of a schema (what a caller sends, before our transforms), or the response side. */
const toSchema = (s: z.ZodType, io: 'input' | 'output' = 'input'): JsonSchema => {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(s, { io, unrepresentable: 'any' }) as JsonSchema;
  return rest;
};

/**
 * Schemas given an id (`.meta({ id: 'LicenseClaims' })`) come out of zod under `$defs` in each
 * schema that uses them: they become named components (`#/components/schemas/<id>`), so generated
 * types can name them. One id must describe one schema wherever it is used.
 */
function liftDefs(node: unknown, components: Record<string, unknown>): unknown {
  if (Array.isArray(node)) return node.map((n) => liftDefs(n, components));
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === '$defs') {
      for (const [id, def] of Object.entries(v as Record<string, unknown>)) {
        const lifted = liftDefs(def, components);
        if (id in components && JSON.stringify(components[id]) !== JSON.stringify(lifted))
          throw new Error(`OpenAPI: schema id ${id} describes two different schemas`);
        components[id] = lifted;
      }
    } else if (k === '$ref' && typeof v === 'string' && v.startsWith('#/$defs/')) out[k] = `#/components/schemas/${v.slice('#/$defs/'.length)}`;
    else out[k] = liftDefs(v, components);
  }
  return out;
}

const SECURITY: Record<AuthKind, Record<string, string[]>[]> = {
  public: [],
  admin: [{ adminToken: [] }, { consoleSession: [] }],
  metrics: [{ metricsToken: [] }, { adminToken: [] }, { consoleSession: [] }],
  console: [{ consoleSession: [] }],
  customer: [{ customerKey: [] }],
  stripe: [{ stripeSignature: [] }],
};

/** Header parameters keep their usual spelling in the document (Idempotency-Key), whatever the schema's key case. */
const headerName = (name: string) => name.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());

/** Path, query and header parameters, from the route's request schemas. */
function parameters(r: RouteContract): unknown[] {
  const out: unknown[] = [];
  for (const [where, schema] of [
    ['path', r.request.params],
    ['query', r.request.query],
    ['header', r.request.headers],
  ] as const) {
    if (!schema) continue;
    const json = toSchema(schema) as { properties?: Record<string, JsonSchema>; required?: string[] };
    for (const [name, prop] of Object.entries(json.properties ?? {})) {
      const { description, ...rest } = prop as { description?: string };
      out.push({
        name: where === 'header' ? headerName(name) : name,
        in: where,
        required: where === 'path' || (json.required ?? []).includes(name),
        ...(description ? { description } : {}),
        schema: rest,
      });
    }
  }
  return out;
}

/** Every success the route declares: status, content types with their schemas, headers. */
function successResponses(r: RouteContract): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(r.responses).map(([status, spec]) => [
      status,
      {
        description: spec.description,
        ...(spec.headers
          ? {
              headers: Object.fromEntries(
                Object.entries(spec.headers).map(([name, h]) => [name, { description: h.description, schema: toSchema(h.schema, 'output') }]),
              ),
            }
          : {}),
        ...(spec.content
          ? { content: Object.fromEntries(Object.entries(spec.content).map(([type, schema]) => [type, { schema: toSchema(schema, 'output') }])) }
          : {}),
      },
    ]),
  );
}

/** Error answers by status, each naming exactly the codes this route can answer with it. */
function errorResponses(r: RouteContract): Record<string, unknown> {
  const byStatus = new Map<number, string[]>();
  for (const code of errorCodes(r)) byStatus.set(ERROR_STATUS[code], [...(byStatus.get(ERROR_STATUS[code]) ?? []), code]);
  return Object.fromEntries(
    [...byStatus.entries()]
      .sort(([a], [b]) => a - b)
      .map(([status, codes]) => [
        String(status),
        {
          description: codes.join(', '),
          content: {
            'application/json': {
              schema: { allOf: [{ $ref: '#/components/schemas/Error' }, { properties: { error: { properties: { code: { enum: codes } } } } }] },
            },
          },
        },
      ]),
  );
}

/**
 * OpenAPI 3.1, generated from the route table alone: every route the app serves, with the zod
 * schemas that validate its requests, every success it declares (status, content type, headers,
 * schema) and exactly the error codes it can answer. Nothing is special-cased by path.
 */
export function buildOpenApi(routes: readonly RouteContract[], version: string) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const params = parameters(r);
    const body = r.rawBody
      ? {
          requestBody: {
            required: true,
            content: { 'application/json': { schema: { type: 'object', description: 'A Stripe event, exactly as Stripe sent it' } } },
          },
        }
      : r.request.body
        ? { requestBody: { required: true, content: { 'application/json': { schema: toSchema(r.request.body) } } } }
        : {};
    (paths[r.path.replace(/:(\w+)/g, '{$1}')] ??= {})[r.method] = {
      summary: r.summary,
      ...(r.description ? { description: r.description } : {}),
      operationId: `${r.method}_${r.path.replace(/[/:.-]+/g, '_').replace(/^_|_$/g, '') || 'root'}`,
      tags: [r.path.split('/')[2] ?? r.path.split('/')[1] ?? 'service'],
      security: SECURITY[r.auth],
      ...(params.length ? { parameters: params } : {}),
      ...body,
      responses: { ...successResponses(r), ...errorResponses(r) },
    };
  }

  const named: Record<string, unknown> = {};
  const liftedPaths = liftDefs(paths, named) as typeof paths;

  return {
    openapi: '3.1.0' as const,
    info: {
      title: 'Billing service',
      version,
      description: 'Customers, API keys, usage metering, plans, subscriptions and Stripe webhooks. Every error is one JSON envelope.',
      license: { name: 'UNLICENSED', identifier: 'UNLICENSED' },
    },
    servers: [{ url: '/' }],
    paths: liftedPaths,
    components: {
      securitySchemes: {
        adminToken: { type: 'http', scheme: 'bearer', description: 'ADMIN_API_TOKEN (one of them)' },
        metricsToken: { type: 'http', scheme: 'bearer', description: 'METRICS_TOKEN' },
        customerKey: { type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'cust_<customerId>_<secret>' },
        consoleSession: {
          type: 'apiKey',
          in: 'cookie',
          name: 'billing_console',
          description:
            'The admin console’s session (POST /api/console/session), named __Host-billing_console in production. Only with a same-origin Origin or Sec-Fetch-Site header.',
        },
        stripeSignature: { type: 'apiKey', in: 'header', name: 'Stripe-Signature', description: 'Stripe’s signature over the raw body' },
      },
      schemas: {
        ...named,
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
    },
  };
}
