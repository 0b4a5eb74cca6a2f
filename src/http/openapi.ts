import { z } from 'zod';
import { ERROR_STATUS } from '../errors/app-error';
import { errorCodes, type AuthKind, type RouteDef } from './route';

type JsonSchema = Record<string, unknown>;

/** The request side of a schema (what a caller sends, before our transforms), or the response side. */
const toSchema = (s: z.ZodType, io: 'input' | 'output' = 'input'): JsonSchema => {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(s, { io, unrepresentable: 'any' }) as JsonSchema;
  return rest;
};

const SECURITY: Record<AuthKind, Record<string, string[]>[]> = {
  public: [],
  admin: [{ adminToken: [] }],
  metrics: [{ metricsToken: [] }, { adminToken: [] }],
  customer: [{ customerKey: [] }],
  stripe: [{ stripeSignature: [] }],
};

/** Header parameters keep their usual spelling in the document (Idempotency-Key), whatever the schema's key case. */
const headerName = (name: string) => name.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());

/** Path, query and header parameters, from the route's request schemas. */
function parameters(r: RouteDef): unknown[] {
  const out: unknown[] = [];
  for (const [where, schema] of [['path', r.request.params], ['query', r.request.query], ['header', r.request.headers]] as const) {
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
function successResponses(r: RouteDef): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(r.responses).map(([status, spec]) => [
      status,
      {
        description: spec.description,
        ...(spec.headers
          ? { headers: Object.fromEntries(Object.entries(spec.headers).map(([name, h]) => [name, { description: h.description, schema: toSchema(h.schema, 'output') }])) }
          : {}),
        ...(spec.content ? { content: Object.fromEntries(Object.entries(spec.content).map(([type, schema]) => [type, { schema: toSchema(schema, 'output') }])) } : {}),
      },
    ]),
  );
}

/** Error answers by status, each naming exactly the codes this route can answer with it. */
function errorResponses(r: RouteDef): Record<string, unknown> {
  const byStatus = new Map<number, string[]>();
  for (const code of errorCodes(r)) byStatus.set(ERROR_STATUS[code], [...(byStatus.get(ERROR_STATUS[code]) ?? []), code]);
  return Object.fromEntries(
    [...byStatus.entries()]
      .sort(([a], [b]) => a - b)
      .map(([status, codes]) => [
        String(status),
        {
          description: codes.join(', '),
          content: { 'application/json': { schema: { allOf: [{ $ref: '#/components/schemas/Error' }, { properties: { error: { properties: { code: { enum: codes } } } } }] } } },
        },
      ]),
  );
}

/**
 * OpenAPI 3.1, generated from the route table alone: every route the app serves, with the zod
 * schemas that validate its requests, every success it declares (status, content type, headers,
 * schema) and exactly the error codes it can answer. Nothing is special-cased by path.
 */
export function buildOpenApi(routes: readonly RouteDef[], version: string) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const params = parameters(r);
    const body = r.rawBody
      ? { requestBody: { required: true, content: { 'application/json': { schema: { type: 'object', description: 'A Stripe event, exactly as Stripe sent it' } } } } }
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

  return {
    openapi: '3.1.0' as const,
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
    },
  };
}

/** A readable reference page with no outside assets (the service may run without internet access). */
export function renderDocsPage(spec: ReturnType<typeof buildOpenApi>): string {
  const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
  const rows = Object.entries(spec.paths)
    .flatMap(([path, ops]) =>
      Object.entries(ops).map(([method, op]) => {
        const o = op as { summary: string; security: Record<string, unknown>[]; requestBody?: unknown; parameters?: unknown[] };
        const auth = o.security.length ? o.security.map((s) => Object.keys(s).join('+')).join(' or ') : 'none';
        const schema = o.requestBody ?? (o.parameters ? { parameters: o.parameters } : null);
        return `<section><h3><span class="m ${method}">${method.toUpperCase()}</span> <code>${esc(path)}</code></h3>
<p>${esc(o.summary)}</p><p class="auth">Authentication: ${esc(auth)}</p>${schema ? `<details><summary>Request</summary><pre>${esc(JSON.stringify(schema, null, 2))}</pre></details>` : ''}</section>`;
      }),
    )
    .join('\n');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(spec.info.title)} API</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2rem auto;padding:0 1rem;color:#222}
section{border-top:1px solid #ddd;padding:.5rem 0}h3{margin:.3rem 0}.m{display:inline-block;min-width:4.5rem;font-size:.8rem;padding:.1rem .4rem;border-radius:3px;color:#fff;background:#555}
.get{background:#2b6cb0}.post{background:#2f855a}.patch{background:#b7791f}.delete{background:#c53030}.auth{color:#555;font-size:.9rem}pre{background:#f6f6f6;padding:.6rem;overflow:auto}</style></head>
<body><h1>${esc(spec.info.title)} API <small>${esc(spec.info.version)}</small></h1>
<p>${esc(spec.info.description)} The machine-readable document is at <a href="/openapi.json">/openapi.json</a>.</p>
<p>Errors: <code>{"error": {"code", "message", "requestId", "details"?}}</code> with codes ${spec.components.schemas.Error.properties.error.properties.code.enum.map((c) => `<code>${c}</code>`).join(', ')}.</p>
${rows}</body></html>`;
}
