import { BillingApiError, BillingNetworkError } from './api-error';
import { RedirectRefusedError } from './client-errors';

/** How one client talks to the service: where, with which credential, how patiently. */
export interface HttpSettings {
  baseUrl: string;
  /** Sent with every request (X-API-Key, or Authorization: Bearer …). */
  headers: Record<string, string>;
  /** Per attempt. */
  timeoutMs: number;
  /** Retries after the first attempt, for requests that are safe to repeat. */
  maxRetries: number;
  /** Exponential backoff with full jitter: a random wait in [0, min(maxMs, baseMs * 2^attempt)]. */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Defaults to the global fetch (Node 20). */
  fetch?: typeof fetch;
  userAgent?: string;
  /** Told of every answer's status and headers (the usage flusher paces itself by them). */
  observe?: (status: number, headers: Headers) => void;
}

export const defaultHttpSettings = { timeoutMs: 10_000, maxRetries: 5, backoffBaseMs: 500, backoffMaxMs: 30_000 } as const;

export interface CallOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  headers?: Record<string, string>;
  /**
   * The request may be sent again with the same effect (a read, or a write carrying its
   * idempotency keys): network errors, 429 and 5xx are retried. Otherwise one attempt only.
   */
  idempotent: boolean;
  /** Stops waiting and retrying. */
  signal?: AbortSignal;
  /** The largest answer read. Default MAX_ANSWER_BYTES. */
  maxAnswerBytes?: number;
}

export interface CallResult<T> {
  status: number;
  body: T;
  headers: Headers;
  requestId: string | null;
}

export const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(timer), reject(signal.reason as Error)), { once: true });
  });

/** Retry-After as seconds (delta or HTTP date), or null. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | null {
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000));
}

/** One limit as the service states it in its draft-8 `RateLimit` and `RateLimit-Policy` headers. */
export interface RateLimitState {
  policy: string;
  /** Requests left in the current window. */
  remaining: number;
  /** Seconds until the window resets. */
  resetSeconds: number;
  /** The policy's quota and window (seconds), when RateLimit-Policy names it. */
  quota?: number;
  windowSeconds?: number;
}

/**
 * The items of a structured-field list (RFC 9651) as `name` and `key=value` parameters: enough for
 * `"usage"; r=59; t=3599, "usageAddress"; r=599; t=59`. The SDK's only dependency is jose, so this
 * small reader is written here.
 */
function sfItems(value: string | null): { name: string; params: Map<string, string> }[] {
  if (!value) return [];
  const out: { name: string; params: Map<string, string> }[] = [];
  // Items are split at commas outside quotes; a byte sequence (`:…:`) has no comma in base64.
  for (const item of value.match(/(?:"(?:[^"\\]|\\.)*"|[^,])+/g) ?? []) {
    const [head = '', ...rest] = item.match(/(?:"(?:[^"\\]|\\.)*"|[^;])+/g) ?? [];
    const name = head.trim().replace(/^"(.*)"$/, '$1');
    const params = new Map<string, string>();
    for (const p of rest) {
      const eq = p.indexOf('=');
      if (eq > 0) params.set(p.slice(0, eq).trim(), p.slice(eq + 1).trim());
    }
    if (name) out.push({ name, params });
  }
  return out;
}

const nonNegative = (v: string | undefined) => (v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined);

/** Every limit an answer states (several limiters may count one request), or [] when it states none. */
export function parseRateLimit(headers: Headers): RateLimitState[] {
  const policies = new Map(sfItems(headers.get('ratelimit-policy')).map((p) => [p.name, p.params]));
  return sfItems(headers.get('ratelimit')).flatMap(({ name, params }) => {
    const remaining = nonNegative(params.get('r'));
    const resetSeconds = nonNegative(params.get('t'));
    if (remaining === undefined || resetSeconds === undefined) return [];
    const policy = policies.get(name);
    const quota = nonNegative(policy?.get('q'));
    const windowSeconds = nonNegative(policy?.get('w'));
    return [{ policy: name, remaining, resetSeconds, ...(quota !== undefined ? { quota } : {}), ...(windowSeconds !== undefined ? { windowSeconds } : {}) }];
  });
}

export function backoffMs(attempt: number, s: Pick<HttpSettings, 'backoffBaseMs' | 'backoffMaxMs'>, random = Math.random): number {
  return Math.floor(random() * Math.min(s.backoffMaxMs, s.backoffBaseMs * 2 ** attempt));
}

/** The largest answer the client reads (a usage answer for 1,000 events is about 100 KB). */
export const MAX_ANSWER_BYTES = 4 * 1024 * 1024;

/**
 * An answer's body as text, read at most `max` bytes: a server (or whatever sits in between) that
 * sends more is cut off instead of filling the instance's memory. The request's timeout bounds a
 * slow body; this bounds a fast one.
 */
export async function readCapped(res: Response, max = MAX_ANSWER_BYTES): Promise<string> {
  const declared = Number(res.headers.get('content-length'));
  if (declared > max) {
    await res.body?.cancel();
    throw new Error(`answer larger than ${max} bytes`);
  }
  if (!res.body) return '';
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel();
      throw new Error(`answer larger than ${max} bytes`);
    }
    parts.push(value);
  }
  return Buffer.concat(parts).toString('utf8');
}

async function errorFrom(res: Response): Promise<BillingApiError> {
  const requestId = res.headers.get('x-request-id');
  const retryAfter = parseRetryAfter(res.headers.get('retry-after'));
  type Envelope = { error?: { code?: string; message?: string; requestId?: string; details?: unknown } };
  let envelope: Envelope | null = null;
  try {
    envelope = JSON.parse(await readCapped(res)) as Envelope;
  } catch {
    // not the service's envelope (a proxy's page)
  }
  const e = envelope?.error;
  return new BillingApiError(res.status, e?.code ?? `HTTP_${res.status}`, e?.message ?? res.statusText, e?.requestId ?? requestId, retryAfter, e?.details);
}

const MAX_REDIRECTS = 5;

/**
 * The request, following a redirect only to the same origin (and never turning a write into a read):
 * fetch's own following would carry the X-API-Key header and the body to any host a redirect names,
 * and could take a request off https. Every request of the SDK goes through it (RedirectRefusedError).
 */
export async function fetchSameOrigin(doFetch: typeof fetch, url: URL, init: RequestInit & { method: string }): Promise<Response> {
  let at = url;
  for (let hop = 0; ; hop++) {
    const res = await doFetch(at, { ...init, redirect: 'manual' });
    const location = res.headers.get('location');
    if (res.status < 300 || res.status > 399 || res.status === 304 || location === null) return res;
    await res.body?.cancel().catch(() => undefined);
    let next: URL;
    try {
      next = new URL(location, at);
    } catch {
      throw new RedirectRefusedError(`${at.origin} answered ${res.status} with an unreadable Location`, res.status, at.origin, '');
    }
    if (next.origin !== at.origin) {
      throw new RedirectRefusedError(
        `${at.origin} redirected (${res.status}) to another origin, ${next.origin}: not followed, nothing was sent there (point the client at the service itself)`,
        res.status,
        at.origin,
        next.origin,
      );
    }
    const keepsMethod = res.status === 307 || res.status === 308 || init.method === 'GET' || init.method === 'HEAD';
    if (!keepsMethod) {
      throw new RedirectRefusedError(
        `${at.origin} answered ${res.status} to a ${init.method}: not followed (it would drop the body)`,
        res.status,
        at.origin,
        next.origin,
      );
    }
    if (hop + 1 >= MAX_REDIRECTS) throw new RedirectRefusedError(`more than ${MAX_REDIRECTS} redirects from ${url.origin}`, res.status, at.origin, next.origin);
    at = next;
  }
}

/**
 * One call, with retries when it is safe: network errors and timeouts, 429 (waiting at least what
 * Retry-After says) and 5xx, with exponential backoff and jitter. The same request (the same
 * idempotency keys) is sent each time, so a retry can never count twice. Redirects are followed
 * within the service's origin only (RedirectRefusedError otherwise).
 */
export async function call<T>(s: HttpSettings, method: string, path: string, opts: CallOptions): Promise<CallResult<T>> {
  const url = new URL(path.replace(/^\//, ''), s.baseUrl.endsWith('/') ? s.baseUrl : `${s.baseUrl}/`);
  for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
  const headers: Record<string, string> = { accept: 'application/json', ...s.headers, ...opts.headers };
  if (s.userAgent) headers['user-agent'] = s.userAgent;
  const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  if (body !== undefined) headers['content-type'] = 'application/json';
  const doFetch = s.fetch ?? fetch;
  const retries = opts.idempotent ? s.maxRetries : 0;

  for (let attempt = 0; ; attempt++) {
    let failure: BillingApiError | BillingNetworkError;
    const timeout = AbortSignal.timeout(s.timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    try {
      const res = await fetchSameOrigin(doFetch, url, { method, headers, body, signal });
      s.observe?.(res.status, res.headers);
      if (res.ok) {
        const type = res.headers.get('content-type') ?? '';
        const text = res.status === 204 ? '' : await readCapped(res, opts.maxAnswerBytes);
        const parsed: unknown = res.status === 204 ? undefined : type.startsWith('application/json') ? JSON.parse(text) : text;
        return { status: res.status, body: parsed as T, headers: res.headers, requestId: res.headers.get('x-request-id') };
      }
      failure = await errorFrom(res);
      if (!failure.retryable) throw failure;
    } catch (err) {
      if (err instanceof BillingApiError || err instanceof RedirectRefusedError) throw err;
      if (opts.signal?.aborted) throw opts.signal.reason as Error;
      failure = new BillingNetworkError(timeout.aborted ? `no answer from ${url.origin} within ${s.timeoutMs} ms` : `could not reach ${url.origin}`, {
        cause: err,
      });
    }
    if (attempt >= retries) throw failure;
    const wait = Math.max(backoffMs(attempt, s), failure instanceof BillingApiError && failure.retryAfter !== null ? failure.retryAfter * 1000 : 0);
    await sleep(wait, opts.signal);
  }
}
