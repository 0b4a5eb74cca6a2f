import type { Request, RequestHandler } from 'express';
import { ipKeyGenerator, type Store } from 'express-rate-limit';
import type { Logger } from 'pino';
import { RedisStore } from 'rate-limit-redis';
import type { Config } from '../config';
import { AppError } from '../errors/app-error';
import { bearerToken, type AdminTokenVerifier } from './admin-auth';
import { hasSessionCookie } from '../modules/console/console-sessions';
import { createAuthFailureGuard, type AuthFailureGuard } from '../security/auth-failure-guard';
import { FallbackStore } from '../security/fallback-store';
import { MemoryCounter, rateLimiter } from '../security/rate-limiter';
import { withRedisBreaker, type RedisCommander } from '../security/redis-breaker';

export type LimiterName = 'api' | 'usage' | 'usageAddress' | 'webhooks' | 'admin' | 'console' | 'authFailures';

export type { RedisCommander } from '../security/redis-breaker';

export interface Limiters {
  api: RequestHandler;
  usage: RequestHandler;
  usageAddress: RequestHandler;
  webhooks: RequestHandler;
  admin: RequestHandler;
  /** Admin routes called with a console session instead of a token (the admin limiter skips those). */
  console: RequestHandler;
  /** Failed authentications, counted before the check (see auth-failure-guard.ts). */
  authFailures: AuthFailureGuard;
  /** Counted refusals, for metrics and tests. */
  onLimited?: (name: LimiterName) => void;
}

const ipKey = (req: Request) => ipKeyGenerator(req.ip ?? 'unknown');

/**
 * Callers the service can already tell are real are counted as themselves, not by their address,
 * so failures and junk from a shared address (a NAT, an egress proxy) never lock them out: a
 * correct admin token (matched in constant time, before any limiter) by its fingerprint, a key
 * this instance has already verified by its customer. Everything else is counted by address.
 */
const adminKey = (adminTokens: AdminTokenVerifier) => (req: Request) => {
  const token = bearerToken(req.get('authorization'));
  const fingerprint = token ? adminTokens.match(token) : null;
  // adminAuth reads it back instead of comparing again.
  req.res!.locals.adminFingerprint = fingerprint;
  return fingerprint ? `token:${fingerprint}` : ipKey(req);
};

const customerKey = (remembered: (presented: string | undefined) => string | null) => (req: Request) => {
  const customerId = remembered(req.get('x-api-key'));
  return customerId ? `customer:${customerId}` : ipKey(req);
};

export interface LimiterDeps {
  config: Pick<Config, 'rateLimits' | 'redisCommandTimeoutMs' | 'redisBreakerMs'>;
  /** The admin limiter does not count requests carrying a METRICS_TOKEN (compared in constant time). */
  metricsTokens: AdminTokenVerifier;
  /** A request with a correct admin token is counted by that token, not by its address. */
  adminTokens?: AdminTokenVerifier;
  /** The console's session cookie (null: ADMIN_CONSOLE=off): its requests spend RATE_LIMIT_CONSOLE, not RATE_LIMIT_ADMIN. */
  consoleCookie?: string | null;
  /** The customer of a key this instance has verified already (no bcrypt, no query), else null. */
  rememberedCustomer?: (presented: string | undefined) => string | null;
  redis: RedisCommander | null;
  logger: Logger;
  onLimited?: (name: LimiterName) => void;
  /** Hears when limits fall back to memory because Redis fails (true) and when they share it again. */
  onRedisFallback?: (active: boolean) => void;
}

/**
 * Every limiter answers 429 in the one error envelope with draft-8 RateLimit headers and
 * Retry-After (src/security/rate-limiter.ts). With Redis, counters are shared by all instances; if Redis goes away each
 * limiter keeps counting in memory (per instance) instead of letting everything through.
 */
export function createLimiters({
  config,
  metricsTokens,
  adminTokens,
  consoleCookie,
  rememberedCustomer,
  redis,
  logger,
  onLimited,
  onRedisFallback,
}: LimiterDeps): Limiters {
  // What adminAuth takes for a console session: the cookie and no bearer token.
  const viaConsole = (req: Request) => !!consoleCookie && !req.get('authorization') && hasSessionCookie(req, consoleCookie);
  // One breaker for the connection: every limiter learns of an outage from the first failure.
  const guarded =
    redis && withRedisBreaker(redis, { timeoutMs: config.redisCommandTimeoutMs, openMs: config.redisBreakerMs, logger, onFallback: onRedisFallback });
  const store = (name: LimiterName): Store => {
    if (!guarded) return new MemoryCounter();
    const shared = new RedisStore({
      prefix: `billing:rl:${name}:`,
      sendCommand: (...args: string[]) => guarded.sendCommand(args) as never,
    });
    return new FallbackStore(shared);
  };
  const byAddress = { key: ipKey };
  const byCustomer = rememberedCustomer ? { key: customerKey(rememberedCustomer) } : byAddress;

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
    api: make('api', byCustomer),
    // Keyed after authentication: one customer, whatever addresses its instances use.
    usage: make('usage', { key: (req) => `customer:${(req.res?.locals.principal as { customerId: string }).customerId}` }),
    // Before authentication: a flood of bad keys from one address meets this before any key check.
    usageAddress: make('usageAddress', byCustomer),
    webhooks: make('webhooks', { key: ipKey }),
    admin: make('admin', {
      key: adminTokens ? adminKey(adminTokens) : ipKey,
      // Prometheus scrapes with METRICS_TOKEN every 15-60 s: that must not spend the admin budget.
      skip: (req) => {
        const token = bearerToken(req.get('authorization'));
        return (!!token && metricsTokens.match(token) !== null) || viaConsole(req);
      },
    }),
    // By address, not by session: a made-up cookie per request must not buy a budget of its own.
    console: make('console', { key: ipKey, skip: (req) => !viaConsole(req) }),
    authFailures: createAuthFailureGuard({
      store: store('authFailures'),
      ...config.rateLimits.authFailures,
      onLimited: () => onLimited?.('authFailures'),
    }),
    onLimited,
  };
}
