import type { Logger } from 'pino';
import { ErrorReply } from 'redis';

/** The part of a Redis client the limiters need. */
export interface RedisCommander {
  sendCommand(args: string[]): Promise<unknown>;
}

export interface RedisBreakerOptions {
  /** Every call is answered within this, by Redis or by a timeout (a failure). */
  timeoutMs: number;
  /** Failures in a row that open the breaker. */
  failures?: number;
  /** How long an open breaker skips Redis before one call probes it. */
  openMs: number;
  logger: Logger;
  /** Hears when limits start counting in memory (true) and when they share Redis again (false). */
  onFallback?: (active: boolean) => void;
  now?: () => number;
}

export class RedisUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RedisUnavailableError';
  }
}

/**
 * Every rate-limit call to Redis goes through here, so none can make a request wait on a Redis
 * that accepts connections but stops answering (a failover, a partition): each call is bounded by
 * REDIS_COMMAND_TIMEOUT, and a timeout is a failure like a refused connection, so the limiter
 * counts that request in memory at once. After a few failures in a row the breaker opens: Redis is
 * skipped (no call, no wait) for REDIS_BREAKER_SECONDS, then a single call probes it while the rest
 * still count in memory; the probe's answer closes the breaker. One warning per outage, one line
 * when sharing resumes, and `redis_fallback_active` (through onFallback) in between.
 *
 * A call that timed out stays in the client's queue until Redis answers or the connection drops
 * (replies must stay in order), so the open breaker is also what keeps that queue short.
 */
export function withRedisBreaker(inner: RedisCommander, o: RedisBreakerOptions): RedisCommander & { readonly fallback: boolean } {
  const now = o.now ?? Date.now;
  const threshold = o.failures ?? 3;
  let failuresInARow = 0;
  let openUntil = 0;
  let probing = false;
  let fallback = false;

  const enterFallback = (err: unknown) => {
    if (fallback) return;
    fallback = true;
    o.onFallback?.(true);
    o.logger.warn({ reason: err instanceof Error ? err.message : String(err) }, 'Redis unreachable: rate limits counted per instance until it returns');
  };

  const answered = () => {
    failuresInARow = 0;
    if (!fallback) return;
    fallback = false;
    o.onFallback?.(false);
    o.logger.info('rate limits shared through Redis again');
  };

  const bounded = (args: string[]) =>
    new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => reject(new RedisUnavailableError(`Redis did not answer within ${o.timeoutMs} ms`)), o.timeoutMs);
      inner.sendCommand(args).then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err instanceof Error ? err : new RedisUnavailableError(String(err)));
        },
      );
    });

  return {
    get fallback() {
      return fallback;
    },
    async sendCommand(args) {
      const open = failuresInARow >= threshold;
      const probe = open && !probing && now() >= openUntil;
      if (open && !probe) throw new RedisUnavailableError('Redis skipped while it fails (circuit open)');
      if (probe) probing = true;
      try {
        const reply = await bounded(args);
        answered();
        return reply;
      } catch (err) {
        // An error Redis itself answered (NOSCRIPT, a wrong type) means it is there.
        if (isReply(err)) {
          answered();
          throw err;
        }
        failuresInARow++;
        if (failuresInARow >= threshold) openUntil = now() + o.openMs;
        enterFallback(err);
        throw err;
      } finally {
        if (probe) probing = false;
      }
    },
  };
}

/** node-redis's error for a reply Redis sent (as opposed to a connection or timeout failure). */
const isReply = (err: unknown) => err instanceof ErrorReply;
