import { ipKeyGenerator, type Store } from 'express-rate-limit';
import { AppError, UnauthorizedError } from '../errors/app-error';
import { rateLimitHeaders } from './rate-limit-headers';

/**
 * The failed-authentication limit. Attempts are counted *before* the check they pay for, with an
 * atomic increment (a reservation), and a success gives its reservation back. So a client that
 * hangs up before the answer is counted all the same, and concurrent attempts cannot all read the
 * counter before any of them adds to it: of 200 concurrent failures against a limit of 20, 20 run.
 *
 * Counters are named by what an attempt claims: `ip:<address>` (IPv6 by /56), `customer:<id>` (the
 * customer id in a presented key, for customers that exist), `key:<id>:<start>` (a key whose
 * display start matches a live key) and `keyip:<id>:<start>:<address>` (the same, from one
 * address). Every name shares the one limit, RATE_LIMIT_AUTH_FAILURES.
 */
export interface AuthFailureGuard {
  /** The limit each counter is held to. */
  readonly max: number;
  /** Counts one attempt against each name now; the caller gives it back on success. */
  reserve(names: readonly string[]): Promise<Reservation>;
  /** A failure that cost nothing to find (a missing, malformed or remembered-bad credential): counted, refused if over. */
  fail(names: readonly string[]): Promise<AppError>;
}

export interface Reservation {
  /** Whether the named counter has passed the limit with this attempt. */
  over(name: string): boolean;
  /** The named counter as this attempt left it. */
  hits(name: string): number;
  /** The 429 to answer, naming when the earliest counter that is over resets. */
  refusal(): AppError;
  /** Gives the attempt back (a success, or a check that never ran). Idempotent. */
  release(): Promise<void>;
}

export const addressName = (ip: string | null | undefined) => `ip:${ipKeyGenerator(ip ?? 'unknown')}`;
export const customerName = (customerId: string) => `customer:${customerId}`;
export const keyName = (customerId: string, start: string) => `key:${customerId}:${start}`;
export const keyAddressName = (customerId: string, start: string, ip: string | null | undefined) =>
  `keyip:${customerId}:${start}:${ipKeyGenerator(ip ?? 'unknown')}`;

export interface AuthFailureGuardDeps {
  store: Store;
  max: number;
  windowMs: number;
  onLimited?: () => void;
  now?: () => number;
}

export function createAuthFailureGuard({ store, max, windowMs, onLimited, now = Date.now }: AuthFailureGuardDeps): AuthFailureGuard {
  // Stores initialise synchronously (memory) or start loading their script (Redis, see FallbackStore).
  void store.init?.({ windowMs } as never);

  const headers = rateLimitHeaders('authFailures', max, Math.ceil(windowMs / 1000));
  const refusal = (resetAt: number | undefined): AppError => {
    onLimited?.();
    const seconds = Math.max(1, Math.ceil(((resetAt ?? now() + windowMs) - now()) / 1000));
    return new AppError('RATE_LIMITED', 'Too many failed authentications; retry after the time in the Retry-After header', undefined, {
      headers: {
        'Retry-After': String(seconds),
        'RateLimit-Policy': headers.policy(),
        RateLimit: headers.state(0, seconds),
      },
    });
  };

  async function reserve(names: readonly string[]): Promise<Reservation> {
    // Each count as this increment left it (a store answers with its own copy).
    const counts = await Promise.all(names.map((n) => Promise.resolve(store.increment(n)).then(({ totalHits, resetTime }) => ({ totalHits, resetTime }))));
    const hits = new Map(names.map((n, i) => [n, counts[i]!]));
    let released = false;
    return {
      over: (name) => (hits.get(name)?.totalHits ?? 0) > max,
      hits: (name) => hits.get(name)?.totalHits ?? 0,
      refusal() {
        const resets = names.filter((n) => hits.get(n)!.totalHits > max).map((n) => hits.get(n)!.resetTime?.getTime() ?? now() + windowMs);
        return refusal(resets.length ? Math.min(...resets) : undefined);
      },
      async release() {
        if (released) return;
        released = true;
        await Promise.all(names.map((n) => Promise.resolve(store.decrement(n))));
      },
    };
  }

  return {
    max,
    reserve,
    async fail(names) {
      const r = await reserve(names);
      return names.some((n) => r.over(n)) ? r.refusal() : new UnauthorizedError();
    },
  };
}
