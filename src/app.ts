import express, { Express } from 'express';
import helmet from 'helmet';
import { z } from 'zod';
import type { Config } from './config';
import type { Container } from './container';
import { compose } from './http/compose';
import { registerRoutes } from './http/register-routes';
import type { RouteDef } from './http/route';
import { adminAuth, metricsAuth } from './middleware/admin-auth';
import { customerAuth } from './middleware/customer-auth';
import { errorHandler, notFound } from './middleware/error-handler';
import { requestObserver } from './middleware/http-logger';
import { requestId } from './middleware/request-id';
import { apiKeysRoutes } from './modules/api-keys/api-keys-routes';
import { auditRoutes } from './modules/audit/audit-routes';
import { customersRoutes } from './modules/customers/customers-routes';
import { healthRoutes } from './modules/health/health-routes';
import { json, responses } from './http/response-schemas';
import { defineRoute } from './http/route';
import { docsPageRoutes } from './http/docs-page';
import { buildOpenApi } from './http/openapi';
import { plansRoutes } from './modules/plans/plans-routes';
import { subscriptionsRoutes } from './modules/subscriptions/subscriptions-routes';
import { stripeWebhooksRoutes } from './modules/stripe-webhooks/stripe-webhooks-routes';
import { forwardingRoutes } from './modules/usage/forwarding-routes';
import { usageRoutes } from './modules/usage/usage-routes';
import { licensesRoutes } from './modules/licenses/licenses-routes';

/**
 * /openapi.json and /docs (with its assets, src/http/docs-page.ts) describe the whole table, themselves
 * included. API_DOCS decides who may read them: anyone, admins (the route table says so, so the
 * authorisation matrix covers them), or nobody (not registered: a 404 like any unknown path).
 */
function docsRoutes(table: () => RouteDef[], mode: Config['apiDocs']): RouteDef[] {
  if (mode === 'off') return [];
  const auth = mode === 'admin' ? 'admin' : 'public';
  let spec: ReturnType<typeof buildOpenApi> | null = null;
  const document = () => (spec ??= buildOpenApi(table(), process.env.npm_package_version ?? '0.1.0'));
  return [
    defineRoute({
      method: 'get',
      path: '/openapi.json',
      auth,
      summary: 'The OpenAPI 3.1 document of this API',
      responses: { 200: json(responses.openapi, 'The document: every route, its requests, answers and errors') },
    }).handle(() => ({ status: 200, body: document() })),
    ...docsPageRoutes(auth),
  ];
}

/** prom-client's exposition format (text, version 0.0.4). */
const PROMETHEUS = 'text/plain; version=0.0.4; charset=utf-8';

/** The route table: every route the service answers, with its authentication. */
export function routeTable(c: Container): RouteDef[] {
  const table: RouteDef[] = [
    ...healthRoutes(c.readiness, c.startedAt),
    ...customersRoutes(c.customers),
    ...apiKeysRoutes(c.apiKeys),
    ...auditRoutes(c.audit),
    ...usageRoutes(c.usage, c.usageSchemas, c.config.usage.bodyLimit),
    ...forwardingRoutes(c.forwarding),
    ...plansRoutes(c.plans, c.planSchemas),
    ...subscriptionsRoutes(c.subscriptions),
    ...stripeWebhooksRoutes(c.webhooks, c.config.stripe.webhookBodyLimit),
    ...licensesRoutes(c.licenses, c.config.license.jwksUrl),
    defineRoute({
      method: 'get',
      path: '/metrics',
      auth: 'metrics',
      summary: 'Prometheus metrics (METRICS_TOKEN or an admin token)',
      responses: { 200: { description: 'The Prometheus text format', content: { [PROMETHEUS]: z.string() } } },
    }).handle(async () => ({ status: 200, type: PROMETHEUS, body: await c.metrics.registry.metrics() })),
  ];
  table.push(...docsRoutes(() => table, c.config.apiDocs));
  return table;
}

export interface AppOptions {
  /** Hears of an error answered with a code its route does not declare (tests fail on it). */
  onUndeclaredError?: (route: string, code: string) => void;
}

/** The middleware order, and nothing else: no listen(), no connections opened here. */
export function createApp(c: Container, opts: AppOptions = {}): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', c.config.trustProxy);
  app.set('query parser', 'simple');
  // API answers change with every write; a SHA-1 of every body buys clients nothing here.
  app.set('etag', false);

  // Every request, as one layer: our request id, the access log and duration, helmet's security headers.
  app.use(compose([requestId(), requestObserver(c.logger, c.metrics.httpDuration), helmet()]));

  const admin = adminAuth(c.adminTokens, c.limiters.authFailures, c.audit, (reason) => c.metrics.authFailures.inc({ kind: 'admin_token', reason }));
  registerRoutes(app, routeTable(c), {
    adminAuth: admin,
    metricsAuth: metricsAuth(c.metricsTokens, admin),
    customerAuth: customerAuth(c.verifier),
    jsonBodyLimit: c.config.jsonBodyLimit,
    audit: c.audit,
    limiters: c.limiters,
  });

  app.use(notFound);
  app.use(errorHandler(c.logger, opts.onUndeclaredError));
  return app;
}
