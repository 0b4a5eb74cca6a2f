import type { paths } from '../../packages/client/api-types';

/**
 * The console speaks only the service's documented admin API, typed by the types generated from its
 * OpenAPI document (packages/client/api-types.ts, `npm run client:types`). A path or a field the
 * document does not have does not compile. Requests go to this origin with the session cookie; the
 * browser adds Sec-Fetch-Site: same-origin, which the service requires of a session.
 */
type Method = 'get' | 'post' | 'patch' | 'put' | 'delete';
type Op<P extends keyof paths, M extends Method> = NonNullable<paths[P][M]>;
type Json<C> = C extends { content: { 'application/json': infer J } } ? J : undefined;
type Success<R> = R extends { 200: infer A } ? A : R extends { 201: infer A } ? A : R extends { 202: infer A } ? A : undefined;
export type Answer<P extends keyof paths, M extends Method> = Op<P, M> extends { responses: infer R } ? Json<Success<R>> : never;
type Query<O> = O extends { parameters: { query?: infer Q } } ? Q : never;
type Body<O> = O extends { requestBody?: { content: { 'application/json': infer B } } } ? B : never;

export interface CallOptions<P extends keyof paths, M extends Method> {
  /** Values for the path's {name} parts. */
  params?: Record<string, string>;
  query?: Query<Op<P, M>>;
  body?: Body<Op<P, M>>;
}

/** An answer in the API's error envelope: its code and its message, shown as they are. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly requestId: string | null,
  ) {
    super(message);
  }
}

/** Called when the session has ended (a 401): the app goes to sign-in and comes back after. */
let onSignedOut: () => void = () => undefined;
export const whenSignedOut = (f: () => void) => {
  onSignedOut = f;
};

export function url(path: string, params?: Record<string, string>, query?: object): string {
  const filled = path.replace(/\{(\w+)\}/g, (_m, k: string) => encodeURIComponent(params?.[k] ?? ''));
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== null && v !== '') qs.set(k, String(v));
  const s = qs.toString();
  return s ? `${filled}?${s}` : filled;
}

export async function call<P extends keyof paths, M extends Method>(method: M, path: P, opts: CallOptions<P, M> = {}): Promise<Answer<P, M>> {
  const res = await fetch(url(path, opts.params, opts.query), {
    method: method.toUpperCase(),
    credentials: 'same-origin',
    headers: opts.body !== undefined ? { 'Content-Type': 'application/json', Accept: 'application/json' } : { Accept: 'application/json' },
    body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
  });
  if (res.status === 204) return undefined as Answer<P, M>;
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: reported below
  }
  if (!res.ok) {
    const e = (json as { error?: { code?: string; message?: string; requestId?: string } } | null)?.error;
    const err = new ApiError(res.status, e?.code ?? 'HTTP_' + res.status, e?.message ?? `The service answered ${res.status}`, e?.requestId ?? null);
    if (res.status === 401 && path !== '/api/console/session') onSignedOut();
    throw err;
  }
  return json as Answer<P, M>;
}

/** The usage report as CSV, for a download link. */
export const csvUrl = (path: string, params: Record<string, string>, query: object) => url(path, params, { ...query, format: 'csv' });
