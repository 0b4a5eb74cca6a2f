import type { Request, RequestHandler } from 'express';
import { ipKeyGenerator, type Store } from 'express-rate-limit';
import type { Logger } from 'pino';
import { RedisStore } from 'rate-limit-redis';
import type { Config } from '../config';
import { AppError } from '../errors/app-error';
import { bearerToken, type AdminTokenVerifier } from './admin-auth';
import { createAuthFailureGuard, type AuthFailureGuard } from '../security/auth-failure-guard';
import { FallbackStore } from '../security/fallback-store';
import { MemoryCounter, rateLimiter } from '../security/rate-limiter';

export type LimiterName = 'api' | 'usage' | 'usageAddress' | 'webhooks' | 'admin' | 'authFailures';

/** The part of a Redis client the limiters need. */
export interface RedisCommander {
  sendCommand(args: string[]): Promise<unknown>;
}

export interface Limiters {
  api: RequestHandler;
  usage: RequestHandler;
  usageAddress: RequestHandler;
  webhooks: RequestHandler;
  admin: RequestHandler;
  /** Failed authentications, counted before the check (see auth-failure-guard.ts). */
  authFailures: AuthFailureGuard;
  /** Counted refusals, for metrics and tests. */
  onLimited?: (name: LimiterName) => void;
}

const ipKey = (req: Request) => ipKeyGenerator(req.ip ?? 'unknown');

export interface LimiterDeps {
  config: Pick<Config, 'rateLimits'>;
  /** The admin limiter does not count requests carrying a METRICS_TOKEN (compared in constant time). */
  metricsTokens: AdminTokenVerifier;
  redis: RedisCommander | null;
  logger: Logger;
  onLimited?: (name: LimiterName) => void;
}

/**
 * Every limiter answers 429 in the one error envelope with draft-8 RateLimit headers and
 * Retry-After (src/security/rate-limiter.ts). With Redis, counters are shared by all instances; if Redis goes away each
 * limiter keeps counting in memory (per instance) instead of letting everything through.
 */
export function createLimiters({ config, metricsTokens, redis, logger, onLimited }: LimiterDeps): Limiters {
  const store = (name: LimiterName): Store => {
    if (!redis) return new MemoryCounter();
    const shared = new RedisStore({
      prefix: `billing:rl:${name}:`,
      sendCommand: (...args: string[]) => redis.sendCommand(args) as never,
    });
    return new FallbackStore(shared, name, logger);
  };

  const make = (name: LimiterName, opts: { key: (req: Request) => string; skip?: (req: Request) => boolean }) => {
    const { max, windowMs } = config.rateLimits[name];
    return rateLimiter({
      name,
      limit: max,
      windowMs,
      store: store(name),
      key: opts.key,
      skip: opts.skip,
      logger,
      onLimited: (_req, res, next) => {
        onLimited?.(name);
        res.locals.rateLimited = name;
        next(new AppError('RATE_LIMITED', 'Too many requests; retry after the time in the Retry-After header'));
      },
    });
  };

  return {
    api: make('api', { key: ipKey }),
    // Keyed after authentication: one customer, whatever addresses its instances use.
    usage: make('usage', { key: (req) => `customer:${(req.res?.locals.principal as { customerId: string }).customerId}` }),
    // Before authentication: a flood of bad keys from one address meets this before any key check.
    usageAddress: make('usageAddress', { key: ipKey }),
    webhooks: make('webhooks', { key: ipKey }),
    admin: make('admin', {
      key: ipKey,
      // Prometheus scrapes with METRICS_TOKEN every 15-60 s: that must not spend the admin budget.
      skip: (req) => {
        const token = bearerToken(req.get('authorization'));
        return !!token && metricsTokens.match(token) !== null;
      },
    }),
    authFailures: createAuthFailureGuard({
      store: store('authFailures'),
      ...config.rateLimits.authFailures,
      onLimited: () => onLimited?.('authFailures'),
    }),
    onLimited,
  };
}
