import CircuitBreaker from 'opossum';
import type { Logger } from 'pino';
import { ErrorReply } from 'redis';

/** The part of a Redis client the limiters need. */
export interface RedisCommander {
  sendCommand(args: string[]): Promise<unknown>;
}

export interface RedisBreakerOptions {
  /** Every call is answered within this, by Redis or by a timeout (a failure). */
  timeoutMs: number;
  /** How long an open breaker skips Redis before one call probes it. */
  openMs: number;
  logger: Logger;
  /** Hears when limits start counting in memory (true) and when they share Redis again (false). */
  onFallback?: (active: boolean) => void;
}

/**
 * Every rate-limit call to Redis goes through here (opossum's circuit breaker), so none can make a
 * request wait on a Redis that accepts connections but stops answering (a failover, a partition):
 * each call is bounded by REDIS_COMMAND_TIMEOUT, and a timeout is a failure like a refused
 * connection, so the limiter counts that request in memory at once. When most of the last second's
 * calls (3 at least) failed, the breaker opens: Redis is skipped, with no call and no wait, for
 * REDIS_BREAKER_SECONDS; then a single call probes it while the rest still count in memory, and the
 * probe's answer closes the breaker. One warning per outage, one line when sharing resumes, and
 * `redis_fallback_active` (through onFallback) in between.
 *
 * A call that timed out stays in the client's queue until Redis answers or the connection drops
 * (replies must stay in order); the open breaker is also what keeps that queue short.
 */
export function withRedisBreaker(inner: RedisCommander, o: RedisBreakerOptions): RedisCommander {
  const breaker = new CircuitBreaker((args: string[]) => bounded(inner.sendCommand(args), o.timeoutMs), {
    // Bounded by `bounded` below: opossum's own timer would also fire for a reply that has arrived
    // but waits behind a busy event loop.
    timeout: false,
    resetTimeout: o.openMs,
    errorThresholdPercentage: 50,
    volumeThreshold: 3,
    // A window of one second: a busy instance opens as fast as an idle one.
    rollingCountTimeout: 1000,
    rollingCountBuckets: 10,
    // An error Redis itself answered (NOSCRIPT, a wrong type) means it is there.
    errorFilter: (err: unknown) => err instanceof ErrorReply,
  });
  let fallback = false;
  breaker.on('failure', (err: unknown) => {
    if (fallback) return;
    fallback = true;
    o.onFallback?.(true);
    o.logger.warn({ reason: err instanceof Error ? err.message : String(err) }, 'Redis unreachable: rate limits counted per instance until it returns');
  });
  breaker.on('success', () => {
    if (!fallback) return;
    fallback = false;
    o.onFallback?.(false);
    o.logger.info('rate limits shared through Redis again');
  });
  return { sendCommand: (args) => breaker.fire(args) };
}

/**
 * The call's answer, or a timeout error after `ms`. When the timer fires, the answer may already be
 * in the socket's buffer, unread because the event loop was busy (timers run before I/O): one turn
 * of the loop (setImmediate runs after I/O) lets it land first, so only a Redis that really has not
 * answered counts as a timeout.
 */
function bounded<T>(call: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(
      () =>
        setImmediate(() => {
          if (settled) return;
          settled = true;
          reject(new Error(`Timed out after ${ms}ms`));
        }),
      ms,
    );
    call.then(
      (v) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
