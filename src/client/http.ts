import { BillingApiError, BillingNetworkError } from './api-error';

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
}

export interface CallResult<T> {
  status: number;
  body: T;
  headers: Headers;
  requestId: string | null;
}

const sleep = (ms: number, signal?: AbortSignal) =>
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

export function backoffMs(attempt: number, s: Pick<HttpSettings, 'backoffBaseMs' | 'backoffMaxMs'>, random = Math.random): number {
  return Math.floor(random() * Math.min(s.backoffMaxMs, s.backoffBaseMs * 2 ** attempt));
}

async function errorFrom(res: Response): Promise<BillingApiError> {
  const requestId = res.headers.get('x-request-id');
  const retryAfter = parseRetryAfter(res.headers.get('retry-after'));
  type Envelope = { error?: { code?: string; message?: string; requestId?: string; details?: unknown } };
  let envelope: Envelope | null = null;
  try {
    envelope = (await res.json()) as Envelope;
  } catch {
    // not the service's envelope (a proxy's page)
  }
  const e = envelope?.error;
  return new BillingApiError(res.status, e?.code ?? `HTTP_${res.status}`, e?.message ?? res.statusText, e?.requestId ?? requestId, retryAfter, e?.details);
}

/**
 * One call, with retries when it is safe: network errors and timeouts, 429 (waiting at least what
 * Retry-After says) and 5xx, with exponential backoff and jitter. The same request (the same
 * idempotency keys) is sent each time, so a retry can never count twice.
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
      const res = await doFetch(url, { method, headers, body, signal });
      if (res.ok) {
        const type = res.headers.get('content-type') ?? '';
        const parsed = res.status === 204 ? undefined : type.startsWith('application/json') ? await res.json() : await res.text();
        return { status: res.status, body: parsed as T, headers: res.headers, requestId: res.headers.get('x-request-id') };
      }
      failure = await errorFrom(res);
      if (!failure.retryable) throw failure;
    } catch (err) {
      if (err instanceof BillingApiError) throw err;
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
