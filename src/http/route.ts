import type { Request } from 'express';
import { z } from 'zod';
import type { ErrorCode } from '../errors/app-error';
import type { ActorContext } from '../lib/request-context';
import type { CustomerPrincipal } from '../modules/api-keys/key-verifier';

/**
 * 'stripe': no credential middleware; the handler checks Stripe's signature over the raw body.
 * 'metrics': METRICS_TOKEN or an admin token.
 * 'console': an admin console session (its cookie, from this origin) and nothing else; admin routes take one too.
 */
export type AuthKind = 'public' | 'admin' | 'customer' | 'stripe' | 'metrics' | 'console';
export type HttpMethod = 'get' | 'post' | 'patch' | 'put' | 'delete';

export interface AdminPrincipal {
  /** A non-secret fingerprint of the admin token used, so audit rows tell rotated tokens apart. */
  actorId: string;
}

type PrincipalFor<A extends AuthKind> = A extends 'admin' | 'metrics' | 'console' ? AdminPrincipal : A extends 'customer' ? CustomerPrincipal : null;

/** A header a response carries: documented, and typed in the handler's reply. */
export interface HeaderSpec {
  description: string;
  schema: z.ZodType;
}

/** One answer a route can give: its body by content type (none: an empty body) and its headers. */
export interface ResponseSpec {
  description: string;
  content?: { readonly [contentType: string]: z.ZodType };
  headers?: { readonly [name: string]: HeaderSpec };
}

export type ResponseSpecs = { readonly [status: number]: ResponseSpec };

type HeaderValues<R extends ResponseSpec> = R['headers'] extends { readonly [name: string]: HeaderSpec }
  ? { [K in keyof R['headers']]?: z.input<R['headers'][K]['schema']> }
  : Record<string, never>;

type BodyReply<S extends number, R extends ResponseSpec, C extends { readonly [t: string]: z.ZodType }> = {
  [T in keyof C & string]: {
    status: S;
    body: z.input<C[T]>;
    headers?: HeaderValues<R>;
  } & (T extends 'application/json' ? { type?: T } : { type: T });
}[keyof C & string];

/** What a handler returns: exactly one of the answers its route declares, with a body of that shape. */
export type ReplyFor<Rs extends ResponseSpecs> = {
  [S in keyof Rs & number]: Rs[S]['content'] extends { readonly [t: string]: z.ZodType }
    ? BodyReply<S, Rs[S], Rs[S]['content']>
    : { status: S; headers?: HeaderValues<Rs[S]> };
}[keyof Rs & number];

export interface Reply {
  status: number;
  type?: string;
  body?: unknown;
  headers?: Record<string, unknown>;
}

export interface RouteInput<A extends AuthKind, B, Q, P, H> {
  body: B;
  query: Q;
  params: P;
  headers: H;
  principal: PrincipalFor<A>;
  ctx: ActorContext;
  req: Request;
  /** Aborted when the client hangs up before the reply is sent (made on first use). */
  readonly signal: AbortSignal;
}

/** The request side of a route's contract. Every part is validated before the handler runs. */
export interface RequestSpec<B extends z.ZodType, Q extends z.ZodType, P extends z.ZodType, H extends z.ZodType> {
  body?: B;
  query?: Q;
  params?: P;
  /** Request headers the route reads (lower-case names), e.g. Idempotency-Key. */
  headers?: H;
  /**
   * The body schema's checks written out for the common body: its output for a body that passes,
   * undefined for anything else (then the schema decides and words the errors). Only where a
   * test holds the two to the same answers.
   */
  fastBody?: (raw: unknown) => z.output<B> | undefined;
}

/**
 * A route's contract: everything the OpenAPI document, the validation and the security tests need to
 * know, built from configuration alone (no service, no database).
 */
export interface RouteContract {
  method: HttpMethod;
  path: string;
  auth: AuthKind;
  summary: string;
  description?: string;
  request: RequestSpec<z.ZodType, z.ZodType, z.ZodType, z.ZodType>;
  /** Every successful answer, by status. */
  responses: ResponseSpecs;
  /** Error codes this route answers beyond those its authentication and request schemas imply. */
  errors: readonly ErrorCode[];
  /** Audit action name for admin writes; a failed attempt is audited under it too. */
  auditAction?: string;
  /** Overrides JSON_BODY_LIMIT for this route (batch uploads, webhooks). */
  bodyLimit?: string;
  /** The body as raw bytes (a Buffer), never parsed: signature checks need Stripe's exact bytes. */
  rawBody?: boolean;
  /** An extra limiter applied after authentication (per customer). */
  rateLimit?: 'usage';
  /**
   * Its answers carry a key, a secret or a license: every answer (errors too) is sent with
   * `Cache-Control: no-store`, so no browser, proxy or CDN keeps a copy. tests/api/no-store.test.ts
   * sends every route's sample request and fails on a secret answered without it.
   */
  noStore?: boolean;
}

/** One row of the route table: a contract with its handler bound. */
export interface RouteDef extends RouteContract {
  handle(input: RouteInput<AuthKind, unknown, unknown, unknown, unknown>): Promise<Reply> | Reply;
}

/** The request part a route does not declare: nothing may be sent there. */
type None = z.ZodObject<Record<string, never>, z.core.$strict>;

export interface RouteSpec<A extends AuthKind, Rs extends ResponseSpecs, B extends z.ZodType, Q extends z.ZodType, P extends z.ZodType, H extends z.ZodType> {
  method: HttpMethod;
  path: string;
  auth: A;
  summary: string;
  description?: string;
  request?: RequestSpec<B, Q, P, H>;
  responses: Rs;
  errors?: readonly ErrorCode[];
  auditAction?: string;
  bodyLimit?: string;
  rawBody?: boolean;
  rateLimit?: 'usage';
  noStore?: boolean;
}

export type Handler<A extends AuthKind, Rs extends ResponseSpecs, B extends z.ZodType, Q extends z.ZodType, P extends z.ZodType, H extends z.ZodType> = (
  input: RouteInput<A, z.output<B>, z.output<Q>, z.output<P>, z.output<H>>,
) => Promise<ReplyFor<Rs>> | ReplyFor<Rs>;

/** A declared route: its contract, and `handle` to bind a handler typed by it. */
export interface DefinedRoute<
  A extends AuthKind,
  Rs extends ResponseSpecs,
  B extends z.ZodType,
  Q extends z.ZodType,
  P extends z.ZodType,
  H extends z.ZodType,
> {
  readonly contract: RouteContract;
  handle(handle: Handler<A, Rs, B, Q, P, H>): RouteDef;
}

/**
 * A route's contract first, then its handler: `defineRoute({...}).handle(async (input) => reply)`.
 * In two steps so the reply is checked against the declared answers (status, body, headers) once
 * they are fully known: a status or a field the contract does not declare does not compile.
 * Modules declare their contracts (`<name>RouteSpecs`) apart from their handlers (`<name>Handlers`),
 * and the route table binds the two with `bindRoutes`.
 */
export function defineRoute<
  A extends AuthKind,
  Rs extends ResponseSpecs,
  B extends z.ZodType = None,
  Q extends z.ZodType = None,
  P extends z.ZodType = None,
  H extends z.ZodType = None,
>(spec: RouteSpec<A, Rs, B, Q, P, H>) {
  const contract: RouteContract = { ...spec, request: spec.request ?? {}, errors: spec.errors ?? [] };
  return {
    contract,
    handle: (handle: Handler<A, Rs, B, Q, P, H>): RouteDef => ({ ...contract, handle }),
  } satisfies DefinedRoute<A, Rs, B, Q, P, H>;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDefinedRoute = DefinedRoute<any, any, any, any, any, any>;
/** A module's route contracts, by name, in the order they are served and documented. */
export type RouteSpecs = Readonly<Record<string, AnyDefinedRoute>>;
/** One handler for each of a module's contracts, typed by it. */
export type HandlersFor<S extends RouteSpecs> = { [K in keyof S]: Parameters<S[K]['handle']>[0] };

/** The contracts alone, in their order: what the OpenAPI document is built from. */
export const contractsOf = (specs: RouteSpecs): RouteContract[] => Object.values(specs).map((s) => s.contract);

/** Binds each contract to its handler, in the contracts' order. */
export function bindRoutes<S extends RouteSpecs>(specs: S, handlers: HandlersFor<S>): RouteDef[] {
  return Object.keys(specs).map((k) => specs[k]!.handle(handlers[k as keyof S]));
}

/** The success statuses a route declares, in ascending order. */
export const successStatuses = (r: RouteContract): number[] =>
  Object.keys(r.responses)
    .map(Number)
    .sort((a, b) => a - b);

/**
 * Every error code a route can answer: those its kind implies (authentication, the request parts it
 * validates, the database) and those it declares. The OpenAPI document publishes exactly these, and
 * the tests fail on any answer outside them.
 */
export function errorCodes(r: RouteContract): ErrorCode[] {
  const codes = new Set<ErrorCode>(['INTERNAL_ERROR']);
  if (r.auth === 'admin' || r.auth === 'metrics' || r.auth === 'customer' || r.auth === 'console')
    codes.add('UNAUTHORIZED').add('RATE_LIMITED').add('SERVICE_UNAVAILABLE');
  // A console session's request from anywhere but the console itself (admin routes take sessions too).
  if (r.auth === 'admin' || r.auth === 'metrics' || r.auth === 'console') codes.add('FORBIDDEN');
  if (r.auth === 'stripe') codes.add('INVALID_SIGNATURE').add('RATE_LIMITED').add('SERVICE_UNAVAILABLE');
  if (r.request.query || r.request.body || r.request.headers) codes.add('VALIDATION_FAILED');
  if (r.request.body && !r.rawBody) codes.add('INVALID_JSON').add('BAD_REQUEST').add('PAYLOAD_TOO_LARGE').add('UNSUPPORTED_MEDIA_TYPE');
  if (r.rawBody) codes.add('BAD_REQUEST').add('PAYLOAD_TOO_LARGE');
  if (r.request.params) codes.add('NOT_FOUND');
  for (const c of r.errors) codes.add(c);
  return [...codes];
}
