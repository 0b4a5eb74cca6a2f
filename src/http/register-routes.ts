import express, { type Express, type RequestHandler } from 'express';
import { NotFoundError } from '../errors/app-error';
import { contextOf } from '../middleware/context';
import { jsonBody } from '../middleware/json-body';
import { toAppError } from '../middleware/error-handler';
import type { AuditService } from '../modules/audit/audit-service';
import type { Limiters } from '../middleware/rate-limits';
import type { RouteDef } from './route';
import { UUID_RE } from '../lib/ids';
import { parseInput } from './validation';

export interface RouteDeps {
  adminAuth: RequestHandler;
  customerAuth: RequestHandler;
  metricsAuth: RequestHandler;
  jsonBodyLimit: string;
  audit: AuditService;
  limiters: Limiters;
}

/**
 * Wires each row of the route table in one fixed order:
 * per-address rate limit -> authenticate (failed attempts counted by the authentication itself,
 * before any bcrypt) -> per-customer limit -> read the body -> validate params, query, body -> handle.
 * Authentication comes before the body so an unauthenticated caller learns nothing about validation.
 */
export function registerRoutes(app: Express, routes: readonly RouteDef[], deps: RouteDeps): void {
  for (const r of routes) {
    const chain: RequestHandler[] = [];
    const { limiters } = deps;
    if (r.auth === 'admin') chain.push(limiters.admin, deps.adminAuth);
    // Usage has a roomier per-address limit (fleets behind one NAT) and its own per-customer one.
    if (r.auth === 'customer') chain.push(r.rateLimit === 'usage' ? limiters.usageAddress : limiters.api, deps.customerAuth);
    if (r.auth === 'stripe') chain.push(limiters.webhooks);
    if (r.auth === 'metrics') chain.push(limiters.admin, deps.metricsAuth);
    if (r.rateLimit === 'usage') chain.push(limiters.usage);
    if (r.rawBody) chain.push(express.raw({ type: 'application/json', limit: r.bodyLimit ?? deps.jsonBodyLimit }));
    else if (r.body) chain.push(...jsonBody(r.bodyLimit ?? deps.jsonBodyLimit));
    chain.push(async (req, res) => {
      const ctx = contextOf(req);
      try {
        const params = r.params ? r.params.safeParse(req.params) : { success: true as const, data: req.params };
        // A malformed id names nothing that exists.
        if (!params.success) throw new NotFoundError('Resource');
        const query = r.query ? parseInput(r.query, req.query, 'query') : {};
        const body = r.rawBody ? req.body : r.body ? parseInput(r.body, req.body ?? {}, 'body') : undefined;
        await r.handle({ params: params.data, query, body, principal: res.locals.principal ?? null, ctx, req }, res);
      } catch (err) {
        if (r.auditAction && r.auth === 'admin') {
          await deps.audit.recordDetached(ctx, {
            action: r.auditAction,
            outcome: 'failure',
            // Only an id that can name something: a path may carry anything (a NUL would fail the write).
            targetId: typeof req.params.id === 'string' && UUID_RE.test(req.params.id) ? req.params.id : null,
            details: { code: toAppError(err).code },
          });
        }
        throw err;
      }
    });
    app[r.method](r.path, ...chain);
  }
}
