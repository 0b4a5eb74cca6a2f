import { parseRateLimit, parseRetryAfter } from './http';

/**
 * When the usage flusher may send, from what the service said about its limits on each answer to
 * POST /api/usage: `Retry-After` on a 429 or 503, and the draft-8 `RateLimit` header of every answer
 * (per limit: requests left `r`, seconds to the window's reset `t`).
 *
 * - No request at all before a Retry-After has passed, or while any limit has nothing left (until its
 *   reset): sending then would only be refused, and each refusal still counts against the limit.
 * - A batch smaller than the largest allowed waits until the requests left are spread over the time
 *   left (t / r seconds apart): what the service allows is spent on full batches, and a partial
 *   batch fills up meanwhile. With the seed's 60 requests an hour that is one partial batch a minute.
 */
export class UsagePacer {
  private holdUntil = 0;
  private partialAfter = 0;

  constructor(private readonly now: () => number = Date.now) {}

  observe(status: number, headers: Headers): void {
    const at = this.now();
    if (status === 429 || status === 503) {
      const after = parseRetryAfter(headers.get('retry-after'), at);
      // A 429 without Retry-After (a proxy's): a second, so a loop never spins on it.
      this.holdUntil = Math.max(this.holdUntil, at + (after ?? (status === 429 ? 1 : 0)) * 1000);
    }
    let partialAfter = 0;
    for (const limit of parseRateLimit(headers)) {
      const reset = at + limit.resetSeconds * 1000;
      if (limit.remaining === 0) this.holdUntil = Math.max(this.holdUntil, reset);
      else partialAfter = Math.max(partialAfter, at + (limit.resetSeconds * 1000) / limit.remaining);
    }
    // The newest answer says what is left now; an older spacing no longer applies.
    this.partialAfter = partialAfter;
  }

  /** Milliseconds before any request may be sent (0: now). */
  holdMs(): number {
    return Math.max(0, this.holdUntil - this.now());
  }

  /** Milliseconds before a batch smaller than the largest may be sent (0: now). */
  partialMs(): number {
    return Math.max(this.holdMs(), this.partialAfter - this.now());
  }
}
