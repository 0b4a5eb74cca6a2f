import type { Request, Response } from 'express';
import { z } from 'zod';
import type { ActorContext } from '../lib/request-context';
import type { CustomerPrincipal } from '../modules/api-keys/key-verifier';

/**
 * 'stripe': no credential middleware; the handler checks Stripe's signature over the raw body.
 * 'metrics': METRICS_TOKEN or an admin token.
 */
export type AuthKind = 'public' | 'admin' | 'customer' | 'stripe' | 'metrics';
export type HttpMethod = 'get' | 'post' | 'patch' | 'put' | 'delete';

export interface AdminPrincipal {
  /** A non-secret fingerprint of the admin token used, so audit rows tell rotated tokens apart. */
  actorId: string;
}

type PrincipalFor<A extends AuthKind> = A extends 'admin' | 'metrics'
  ? AdminPrincipal
  : A extends 'customer'
    ? CustomerPrincipal
    : null;

export interface RouteInput<A extends AuthKind, B, Q, P> {
  body: B;
  query: Q;
  params: P;
  principal: PrincipalFor<A>;
  ctx: ActorContext;
  req: Request;
}

/** One row of the route table: everything the app, the docs and the security tests need to know. */
export interface RouteDef {
  method: HttpMethod;
  path: string;
  auth: AuthKind;
  summary: string;
  /** The shape of a successful response: documented, and checked against real responses in tests. */
  response: z.ZodType;
  /** Audit action name for admin writes; a failed attempt is audited under it too. */
  auditAction?: string;
  body?: z.ZodType;
  /** Overrides JSON_BODY_LIMIT for this route (batch uploads). */
  bodyLimit?: string;
  /** The body as raw bytes (a Buffer), never parsed: signature checks need Stripe's exact bytes. */
  rawBody?: boolean;
  /** An extra limiter applied after authentication (per customer). */
  rateLimit?: 'usage';
  query?: z.ZodType;
  params?: z.ZodType;
  handle(input: RouteInput<AuthKind, unknown, unknown, unknown>, res: Response): unknown;
}

const empty = z.object({});

export function defineRoute<
  A extends AuthKind,
  B extends z.ZodType = typeof empty,
  Q extends z.ZodType = typeof empty,
  P extends z.ZodType = typeof empty,
>(def: {
  method: HttpMethod;
  path: string;
  auth: A;
  summary: string;
  response: z.ZodType;
  auditAction?: string;
  body?: B;
  bodyLimit?: string;
  rawBody?: boolean;
  rateLimit?: 'usage';
  query?: Q;
  params?: P;
  handle(input: RouteInput<A, z.output<B>, z.output<Q>, z.output<P>>, res: Response): unknown;
}): RouteDef {
  return def as unknown as RouteDef;
}
