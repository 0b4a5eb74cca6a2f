import { BillingApiError, BillingNetworkError } from '../../../packages/client';

/** Exit codes: one per kind of failure, so a script can tell them apart. */
export const EXIT = {
  ok: 0,
  /** The service refused for another reason (not found, conflict, ...). */
  refused: 1,
  /** The request was invalid (400, 422): the field problems are listed. */
  invalid: 2,
  /** The admin token was refused (401, 403). */
  auth: 3,
  /** Rate limited (429): try again after Retry-After. */
  rateLimited: 4,
  /** The service failed or could not be reached (5xx, network, timeout). */
  unavailable: 5,
  /** The command line was wrong (EX_USAGE). */
  usage: 64,
} as const;

/** A mistake in the command line or its inputs (a missing token, an unreadable file): exit 64. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

const when = (seconds: number, now: number) => new Date(now + seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

function fieldProblems(details: unknown): string[] {
  if (!Array.isArray(details)) return [];
  const text = (v: unknown) => (typeof v === 'string' || typeof v === 'number' ? String(v) : '');
  return details.map((d: { path?: unknown; message?: unknown }) => `  - ${text(d.path) || '(body)'}: ${text(d.message)}`);
}

/**
 * What to tell the person, and the exit code. Never echoes the token: the messages are built from
 * the status, the service's envelope and the URL's origin only.
 */
export function describeFailure(err: unknown, now = Date.now()): { exitCode: number; message: string } {
  if (err instanceof UsageError) return { exitCode: EXIT.usage, message: `error: ${err.message}` };
  if (err instanceof BillingNetworkError) {
    return { exitCode: EXIT.unavailable, message: `error: ${err.message}. Is the service running there? Check BILLING_API_URL (or --url).` };
  }
  if (!(err instanceof BillingApiError)) return { exitCode: EXIT.refused, message: `error: ${err instanceof Error ? err.message : String(err)}` };

  const ref = err.requestId ? ` (request id ${err.requestId})` : '';
  const head = `${err.status} ${err.code}: ${err.message}`;
  if (err.status === 401 || err.status === 403) {
    return { exitCode: EXIT.auth, message: `error: the service refused the admin token (${head}). Check ADMIN_API_TOKEN (or --token)${ref}.` };
  }
  if (err.status === 429) {
    const retry =
      err.retryAfter === null ? 'Retry-After was not given: try again later' : `Retry-After: ${err.retryAfter} s, try again after ${when(err.retryAfter, now)}`;
    return { exitCode: EXIT.rateLimited, message: `error: rate limited (${head}). ${retry}${ref}.` };
  }
  if (err.status === 400 || err.status === 422) {
    return { exitCode: EXIT.invalid, message: [`error: the service refused the request (${head})${ref}`, ...fieldProblems(err.details)].join('\n') };
  }
  if (err.status >= 500) {
    const retry = err.retryAfter === null ? '' : ` Retry-After: ${err.retryAfter} s.`;
    return { exitCode: EXIT.unavailable, message: `error: the service failed (${head}).${retry}${ref}` };
  }
  return { exitCode: EXIT.refused, message: `error: ${head}${ref}` };
}
