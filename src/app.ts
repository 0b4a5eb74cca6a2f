import express, { Express } from 'express';
import helmet from 'helmet';
import { z } from 'zod';
import type { Config } from './config';
import type { Container } from './container';
import { compose } from './http/compose';
import { registerRoutes } from './http/register-routes';
import { adminAuth, consoleAuth, metricsAuth } from './middleware/admin-auth';
import { consoleSessionHandlers, consoleSessionRouteSpecs } from './modules/console/console-routes';
import { consolePageHandlers, consolePageRouteSpecs } from './modules/console/console-page';
import { overviewHandlers, overviewRouteSpecs, preflightHandlers, preflightRouteSpecs } from './modules/overview/overview';
import { customerAuth } from './middleware/customer-auth';
import { errorHandler, notFound } from './middleware/error-handler';
import { requestObserver } from './middleware/http-logger';
import { requestId } from './middleware/request-id';
import { apiKeysHandlers, apiKeysRouteSpecs } from './modules/api-keys/api-keys-routes';
import { auditHandlers, auditRouteSpecs } from './modules/audit/audit-routes';
import { customersHandlers, customersRouteSpecs } from './modules/customers/customers-routes';
import { healthHandlers, healthRouteSpecs } from './modules/health/health-routes';
import { json, openapiResponse } from './http/response-schemas';
import { bindRoutes, contractsOf, defineRoute, type RouteContract, type RouteDef } from './http/route';
import { docsPageHandlers, docsPageRouteSpecs } from './http/docs-page';
import { buildOpenApi } from './http/openapi';
import { planSchemas } from './modules/plans/plans-schemas';
import { plansHandlers, plansRouteSpecs } from './modules/plans/plans-routes';
import { subscriptionsHandlers, subscriptionsRouteSpecs } from './modules/subscriptions/subscriptions-routes';
import { stripeWebhooksHandlers, stripeWebhooksRouteSpecs } from './modules/stripe-webhooks/stripe-webhooks-routes';
import { forwardingHandlers, forwardingRouteSpecs } from './modules/usage/forwarding-routes';
import { usageSchemas } from './modules/usage/usage-schemas';
import { usageHandlers, usageRouteSpecs } from './modules/usage/usage-routes';
import { licensesHandlers, licensesRouteSpecs } from './modules/licenses/licenses-routes';
import { eventsHandlers, eventsRouteSpecs } from './modules/events/events-routes';
import { webhookEndpointsHandlers, webhookEndpointsRouteSpecs } from './modules/webhooks/webhook-endpoints-routes';
import { webhookDeliveriesHandlers, webhookDeliveriesRouteSpecs } from './modules/webhooks/webhook-deliveries-routes';
import { overrideSchemas } from './modules/entitlements/entitlements-schemas';
import { entitlementsHandlers, entitlementsRouteSpecs } from './modules/entitlements/entitlements-routes';
import { billingPortalHandlers, billingPortalRouteSpecs } from './modules/billing-portal/billing-portal-routes';
import { upcomingInvoiceHandlers, upcomingInvoiceRouteSpecs } from './modules/invoices/upcoming-routes';
import { invoicesHandlers, invoicesRouteSpecs } from './modules/invoices/invoices-routes';
import { trueUpsHandlers, trueUpsRouteSpecs } from './modules/true-ups/true-ups-routes';
import { usageBundlesHandlers, usageBundlesRouteSpecs } from './modules/usage-bundles/usage-bundles-routes';
import { usageRetentionHandlers, usageRetentionRouteSpecs } from './modules/usage-retention/usage-retention-routes';

/**
 * /openapi.json and /docs (with its assets, src/http/docs-page.ts) describe the whole table, themselves
 * included. API_DOCS decides who may read them: anyone, admins (the route table says so, so the
 * authorisation matrix covers them), or nobody (not registered: a 404 like any unknown path).
 */
function docsRouteSpecs(auth: 'public' | 'admin') {
  return {
    getOpenapiJson: defineRoute({
      method: 'get',
      path: '/openapi.json',
      auth,
      summary: 'The OpenAPI 3.1 document of this API',
      responses: { 200: json(openapiResponse, 'The document: every route, its requests, answers and errors') },
    }),
    ...docsPageRouteSpecs(auth),
  };
}

/** prom-client's exposition format (text, version 0.0.4). */
const PROMETHEUS = 'text/plain; version=0.0.4; charset=utf-8';

function serviceRouteSpecs() {
  return {
    getMetrics: defineRoute({
      method: 'get',
      path: '/metrics',
      auth: 'metrics',
      summary: 'Prometheus metrics (METRICS_TOKEN or an admin token)',
      responses: { 200: { description: 'The Prometheus text format', content: { [PROMETHEUS]: z.string() } } },
    }),
  };
}

/**
 * Every route's contract, by module, built from configuration alone: no service, no database. The
 * OpenAPI document (and the client types generated from it) need nothing more. `now` is the clock
 * the usage schemas check occurred_at against.
 */
export function routeSpecs(config: Config, now: () => number = Date.now) {
  return {
    health: healthRouteSpecs(),
    customers: customersRouteSpecs(),
    apiKeys: apiKeysRouteSpecs(),
    audit: auditRouteSpecs(),
    usage: usageRouteSpecs(usageSchemas(config.usage.metrics, config.usage.maxBatch, now), config.usage.bodyLimit),
    usageBundles: usageBundlesRouteSpecs(config.usage.bundleMaxBytes),
    forwarding: forwardingRouteSpecs(),
    plans: plansRouteSpecs(planSchemas(config.usage.metrics)),
    subscriptions: subscriptionsRouteSpecs(),
    stripeWebhooks: stripeWebhooksRouteSpecs(config.stripe.webhookBodyLimit),
    licenses: licensesRouteSpecs(),
    events: eventsRouteSpecs(),
    webhookEndpoints: webhookEndpointsRouteSpecs(),
    webhookDeliveries: webhookDeliveriesRouteSpecs(),
    entitlements: entitlementsRouteSpecs(overrideSchemas(config.usage.metrics, now)),
    billingPortal: billingPortalRouteSpecs(),
    // Before the invoice routes: GET /api/invoices/upcoming must be matched before GET /api/invoices/:id.
    upcomingInvoice: upcomingInvoiceRouteSpecs(),
    // After GET /api/invoices/upcoming, which GET /api/invoices/:id would otherwise take.
    invoices: invoicesRouteSpecs(),
    // Late usage (true-ups): GET /api/reports/usage/late and its retry.
    trueUps: trueUpsRouteSpecs(),
    // Usage archives (retention of raw usage events): GET /api/usage/archives, verify, restore.
    usageRetention: usageRetentionRouteSpecs(),
    overview: overviewRouteSpecs(),
    preflight: preflightRouteSpecs(),
    service: serviceRouteSpecs(),
    consoleSession: config.console.enabled ? consoleSessionRouteSpecs() : null,
    consolePage: config.console.enabled ? consolePageRouteSpecs() : null,
    docs: config.apiDocs === 'off' ? null : docsRouteSpecs(config.apiDocs === 'admin' ? 'admin' : 'public'),
  };
}

/** The contracts of the whole table, in the order it is served: what the OpenAPI document describes. */
export function routeContracts(specs: ReturnType<typeof routeSpecs>): RouteContract[] {
  return Object.values(specs).flatMap((s) => (s ? contractsOf(s) : []));
}

export const openApiDocument = (contracts: readonly RouteContract[]) => buildOpenApi(contracts, process.env.npm_package_version ?? '0.1.0');

/** The route table: every route the service answers, its contract bound to its handler. */
export function routeTable(c: Container): RouteDef[] {
  const specs = routeSpecs(c.config, c.now);
  let document: ReturnType<typeof openApiDocument> | null = null;
  return [
    ...bindRoutes(specs.health, healthHandlers(c.readiness, c.startedAt)),
    ...bindRoutes(specs.customers, customersHandlers(c.customers, c.deals)),
    ...bindRoutes(specs.apiKeys, apiKeysHandlers(c.apiKeys)),
    ...bindRoutes(specs.audit, auditHandlers(c.audit)),
    ...bindRoutes(specs.usage, usageHandlers(c.usage, { fresh: c.deals, cached: c.thresholdWatch })),
    ...bindRoutes(specs.usageBundles, usageBundlesHandlers(c.usageBundles, c.config.license.jwksUrl)),
    ...bindRoutes(specs.forwarding, forwardingHandlers(c.forwarding)),
    ...bindRoutes(specs.plans, plansHandlers(c.plans)),
    ...bindRoutes(specs.subscriptions, subscriptionsHandlers(c.subscriptions, c.invoices)),
    ...bindRoutes(specs.stripeWebhooks, stripeWebhooksHandlers(c.webhooks)),
    ...bindRoutes(specs.licenses, licensesHandlers(c.licenses, c.config.license.jwksUrl, c.usageBundles)),
    ...bindRoutes(specs.events, eventsHandlers(c.events)),
    ...bindRoutes(specs.webhookEndpoints, webhookEndpointsHandlers(c.webhookEndpoints)),
    ...bindRoutes(specs.webhookDeliveries, webhookDeliveriesHandlers(c.deliveries)),
    ...bindRoutes(specs.entitlements, entitlementsHandlers(c.entitlements)),
    ...bindRoutes(specs.billingPortal, billingPortalHandlers(c.billingPortal)),
    ...bindRoutes(specs.upcomingInvoice, upcomingInvoiceHandlers(c.upcomingInvoices)),
    ...bindRoutes(specs.invoices, invoicesHandlers(c.invoices)),
    ...bindRoutes(specs.trueUps, trueUpsHandlers(c.trueUps)),
    ...bindRoutes(specs.usageRetention, usageRetentionHandlers(c.usageRetention)),
    ...(specs.consoleSession && c.consoleSessions ? bindRoutes(specs.consoleSession, consoleSessionHandlers(c.consoleSessions)) : []),
    ...(specs.consolePage ? bindRoutes(specs.consolePage, consolePageHandlers()) : []),
    ...bindRoutes(specs.overview, overviewHandlers({ db: c.db, forwarding: c.forwarding, graceDays: c.config.license.graceDays, now: c.now })),
    ...bindRoutes(specs.preflight, preflightHandlers({ env: c.env, db: c.db, redis: c.redis })),
    ...bindRoutes(specs.service, {
      getMetrics: async () => ({ status: 200, type: PROMETHEUS, body: await c.metrics.registry.metrics() }),
    }),
    ...(specs.docs
      ? bindRoutes(specs.docs, {
          getOpenapiJson: () => ({ status: 200, body: (document ??= openApiDocument(routeContracts(specs))) }),
          ...docsPageHandlers(c.config.apiDocs === 'admin' ? 'admin' : 'public'),
        })
      : []),
  ];
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

  const admin = adminAuth(
    c.adminTokens,
    c.limiters.authFailures,
    c.audit,
    (reason) => c.metrics.authFailures.inc({ kind: 'admin_token', reason }),
    c.consoleSessions,
  );
  registerRoutes(app, routeTable(c), {
    adminAuth: admin,
    metricsAuth: metricsAuth(c.metricsTokens, admin),
    customerAuth: customerAuth(c.verifier),
    consoleAuth: c.consoleSessions ? consoleAuth(c.consoleSessions) : (_req, _res, next) => next(new Error('ADMIN_CONSOLE is off')),
    jsonBodyLimit: c.config.jsonBodyLimit,
    audit: c.audit,
    limiters: c.limiters,
  });

  app.use(notFound);
  app.use(errorHandler(c.logger, opts.onUndeclaredError));
  return app;
}
