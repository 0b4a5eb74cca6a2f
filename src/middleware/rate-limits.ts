import type { Request, RequestHandler } from 'express';
import { ipKeyGenerator, MemoryStore, rateLimit, type Store } from 'express-rate-limit';
import type { Logger } from 'pino';
import { RedisStore } from 'rate-limit-redis';
import type { Config } from '../config';
import { AppError } from '../errors/app-error';
import { FallbackStore } from './fallback-store';

export type LimiterName = 'api' | 'usage' | 'webhooks' | 'admin' | 'authFailures';

/** The part of a Redis client the limiters need. */
export interface RedisCommander {
  sendCommand(args: string[]): Promise<unknown>;
}

export interface Limiters {
  api: RequestHandler;
  usage: RequestHandler;
  webhooks: RequestHandler;
  admin: RequestHandler;
  authFailures: RequestHandler;
  /** Counted refusals, for metrics and tests. */
  onLimited?: (name: LimiterName) => void;
}

const ipKey = (req: Request) => ipKeyGenerator(req.ip ?? 'unknown');

export interface LimiterDeps {
  config: Pick<Config, 'rateLimits' | 'metricsToken'>;
  redis: RedisCommander | null;
  logger: Logger;
  onLimited?: (name: LimiterName) => void;
}

/**
 * Every limiter answers 429 in the one error envelope with draft-8 RateLimit headers and
 * Retry-After. With Redis, counters are shared by all instances; if Redis goes away each
 * limiter keeps counting in memory (per instance) instead of letting everything through.
 */
export function createLimiters({ config, redis, logger, onLimited }: LimiterDeps): Limiters {
  const store = (name: LimiterName): Store => {
    if (!redis) return new MemoryStore();
    const shared = new RedisStore({
      prefix: `billing:rl:${name}:`,
      sendCommand: (...args: string[]) => redis.sendCommand(args) as never,
    });
    return new FallbackStore(shared, name, logger);
  };

  const make = (name: LimiterName, opts: { key: (req: Request) => string; countOnly401?: boolean; skip?: (req: Request) => boolean }) => {
    const { max, windowMs } = config.rateLimits[name];
    return rateLimit({
      windowMs,
      limit: max,
      standardHeaders: 'draft-8',
      legacyHeaders: false,
      identifier: name,
      store: store(name),
      keyGenerator: opts.key,
      skip: opts.skip,
      // The failed-authentication limiter counts only refusals: a success gives its count back.
      ...(opts.countOnly401 ? { skipSuccessfulRequests: true, requestWasSuccessful: (_req: Request, res: { statusCode: number }) => res.statusCode !== 401 } : {}),
      handler: (_req, res, next) => {
        onLimited?.(name);
        res.locals.rateLimited = name;
        next(new AppError('RATE_LIMITED', 'Too many requests; retry after the time in the Retry-After header'));
      },
      validate: { trustProxy: false, xForwardedForHeader: false },
    });
  };

  return {
    api: make('api', { key: ipKey }),
    // Keyed after authentication: one customer, whatever addresses its instances use.
    usage: make('usage', { key: (req) => `customer:${(req.res?.locals.principal as { customerId: string }).customerId}` }),
    webhooks: make('webhooks', { key: ipKey }),
    admin: make('admin', {
      key: ipKey,
      // Prometheus scrapes with METRICS_TOKEN every 15-60 s: that must not spend the admin budget.
      skip: (req) => !!config.metricsToken && req.get('authorization') === `Bearer ${config.metricsToken}`,
    }),
    authFailures: make('authFailures', { key: ipKey, countOnly401: true }),
    onLimited,
  };
}
