import express, { type Express, type RequestHandler, type Response } from 'express';
import { NotFoundError } from '../errors/app-error';
import { UUID_RE } from '../lib/ids';
import { contextOf } from '../middleware/context';
import { jsonBody } from '../middleware/json-body';
import { toAppError } from '../middleware/error-handler';
import { compose } from './compose';
import { sendJson } from './json-reply';
import type { AuditService } from '../modules/audit/audit-service';
import type { Limiters } from '../middleware/rate-limits';
import type { AuthKind, Reply, RouteDef, RouteInput } from './route';
import { parseInput } from './validation';

export interface RouteDeps {
  adminAuth: RequestHandler;
  customerAuth: RequestHandler;
  metricsAuth: RequestHandler;
  /** A console session only (ADMIN_CONSOLE=off: no route has this kind). */
  consoleAuth: RequestHandler;
  jsonBodyLimit: string;
  audit: AuditService;
  limiters: Limiters;
}

/** Sends a handler's reply: the status, headers and body it chose among those its route declares. */
function send(res: Response, reply: Reply): void {
  if (reply.headers)
    for (const [name, value] of Object.entries(reply.headers)) if (value !== undefined) res.setHeader(name, value as string | number | readonly string[]);
  if (reply.body === undefined) res.status(reply.status).end();
  else if (reply.type === undefined || reply.type === 'application/json') sendJson(res, reply.status, reply.body);
  else res.status(reply.status).type(reply.type).send(reply.body);
}

/**
 * Wires each row of the route table in one fixed order:
 * per-address rate limit -> authenticate (failed attempts counted by the authentication itself,
 * before any bcrypt) -> per-customer limit -> read the body -> validate params, query, headers,
 * body -> handle -> send the declared reply.
 * Authentication comes before the body so an unauthenticated caller learns nothing about validation.
 */
export function registerRoutes(app: Express, routes: readonly RouteDef[], deps: RouteDeps): void {
  // Customer routes first: instances call them at volume, and express tries each route in turn
  // (no customer route shares a method and path with another route: a test checks).
  const ordered = [...routes.filter((r) => r.auth === 'customer'), ...routes.filter((r) => r.auth !== 'customer')];
  for (const r of ordered) {
    const { request } = r;
    const chain: RequestHandler[] = [
      (_req, res, next) => {
        // The error handler checks every error answered against what the route declares.
        res.locals.route = r;
        if (r.noStore) res.setHeader('Cache-Control', 'no-store');
        next();
      },
    ];
    const { limiters } = deps;
    if (r.auth === 'admin') chain.push(limiters.admin, limiters.console, deps.adminAuth);
    // Usage has a roomier per-address limit (fleets behind one NAT) and its own per-customer one.
    if (r.auth === 'customer') chain.push(r.rateLimit === 'usage' ? limiters.usageAddress : limiters.api, deps.customerAuth);
    if (r.auth === 'stripe') chain.push(limiters.webhooks);
    if (r.auth === 'metrics') chain.push(limiters.admin, limiters.console, deps.metricsAuth);
    if (r.auth === 'console') chain.push(limiters.admin, limiters.console, deps.consoleAuth);
    if (r.rateLimit === 'usage') chain.push(limiters.usage);
    if (r.rawBody) chain.push(express.raw({ type: 'application/json', limit: r.bodyLimit ?? deps.jsonBodyLimit }));
    else if (request.body) chain.push(jsonBody(r.bodyLimit ?? deps.jsonBodyLimit));
    chain.push(async (req, res) => {
      const ctx = contextOf(req);
      try {
        const params = request.params ? request.params.safeParse(req.params) : { success: true as const, data: req.params };
        // A malformed id names nothing that exists.
        if (!params.success) throw new NotFoundError('Resource');
        const query = request.query ? parseInput(request.query, req.query, 'query') : {};
        const headers = request.headers ? parseInput(request.headers, req.headers, 'headers') : {};
        const raw: unknown = req.body;
        const body = r.rawBody ? raw : request.body ? (request.fastBody?.(raw) ?? parseInput(request.body, raw ?? {}, 'body')) : undefined;
        let hangUp: AbortController | undefined;
        const reply = await r.handle({
          params: params.data,
          query,
          headers,
          body,
          // Set by the authentication that ran for this route's kind (none for public and Stripe routes).
          principal: (res.locals.principal as RouteInput<AuthKind, unknown, unknown, unknown, unknown>['principal'] | undefined) ?? null,
          ctx,
          req,
          // Only routes that ask for it pay for a listener.
          get signal() {
            if (!hangUp) {
              const c = (hangUp = new AbortController());
              if (res.destroyed) c.abort();
              else res.once('close', () => !res.writableFinished && c.abort());
            }
            return hangUp.signal;
          },
        });
        send(res, reply);
      } catch (err) {
        if (r.auditAction && (r.auth === 'admin' || r.auth === 'console')) {
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
    // One layer per route: its steps run as one handler.
    app[r.method](r.path, compose(chain));
  }
}
