import type { Request, RequestHandler, Response } from 'express';
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

  const make = (name: LimiterName, opts: { key: (req: Request) => string; skip?: (req: Request) => boolean }) => {
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
      handler: (_req, res, next) => {
        onLimited?.(name);
        res.locals.rateLimited = name;
        next(new AppError('RATE_LIMITED', 'Too many requests; retry after the time in the Retry-After header'));
      },
      validate: { trustProxy: false, xForwardedForHeader: false },
    });
  };

  /**
   * Failed authentications: checked before authentication with one read of the counter, and
   * counted only when the answer is a 401, so a successful request costs no write at all and an
   * address over the limit is refused before any key check (no bcrypt, no query).
   */
  const failures = (): RequestHandler => {
    const name: LimiterName = 'authFailures';
    const { max, windowMs } = config.rateLimits[name];
    const counters = store(name);
    counters.init?.({ windowMs } as never);
    const refuse = (res: Response, resetTime: Date | undefined) => {
      const seconds = Math.max(1, Math.ceil(((resetTime?.getTime() ?? Date.now() + windowMs) - Date.now()) / 1000));
      res.setHeader('Retry-After', String(seconds));
      res.setHeader('RateLimit-Policy', `"${name}"; q=${max}; w=${Math.ceil(windowMs / 1000)}`);
      res.setHeader('RateLimit', `"${name}"; r=0; t=${seconds}`);
    };
    return async (req, res, next) => {
      const key = ipKey(req);
      const info = await counters.get?.(key);
      if (info && info.totalHits >= max) {
        refuse(res, info.resetTime);
        onLimited?.(name);
        res.locals.rateLimited = name;
        return next(new AppError('RATE_LIMITED', 'Too many failed authentications from this address; retry after the time in the Retry-After header'));
      }
      res.once('finish', () => {
        if (res.statusCode === 401) Promise.resolve(counters.increment(key)).catch(() => undefined);
      });
      next();
    };
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
    authFailures: failures(),
    onLimited,
  };
}
