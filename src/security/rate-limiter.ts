import { hash } from 'node:crypto';
import { isIP } from 'node:net';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { ClientRateLimitInfo, IncrementResponse, Options, Store } from 'express-rate-limit';
import type { Logger } from 'pino';
import { rateLimitHeaders } from './rate-limit-headers';
import { isPublicAddress } from './trust-proxy';

/**
 * Counts in this process's memory: a fixed window per key, from its first hit. Synchronous; the
 * limiter's `count` allocates nothing once its key has an entry in the current window (the answer
 * is the entry itself, read at once). `increment` answers with a copy, as a `Store` must: other
 * callers (the failed-authentication guard) read it a turn later, after other hits may have counted.
 * Expired entries are swept once a window. The same `Store` shape as express-rate-limit's stores,
 * so the Redis store can stand in for it.
 */
export class MemoryCounter implements Store {
  readonly localKeys = true;
  private windowMs = 60_000;
  private readonly entries = new Map<string, { totalHits: number; resetTime: Date }>();
  private sweeper: NodeJS.Timeout | undefined;

  init(options: Pick<Options, 'windowMs'>): void {
    this.windowMs = options.windowMs;
    clearInterval(this.sweeper);
    this.sweeper = setInterval(() => this.sweep(), this.windowMs).unref();
  }

  private sweep(): void {
    const now = Date.now();
    for (const [key, entry] of this.entries) if (entry.resetTime.getTime() <= now) this.entries.delete(key);
  }

  private live(key: string): { totalHits: number; resetTime: Date } | undefined {
    const entry = this.entries.get(key);
    return entry && entry.resetTime.getTime() > Date.now() ? entry : undefined;
  }

  get(key: string): ClientRateLimitInfo | undefined {
    const entry = this.live(key);
    return entry && { totalHits: entry.totalHits, resetTime: entry.resetTime };
  }

  /** One hit; the answer is the live entry: read it at once, never keep it. */
  count(key: string): Readonly<{ totalHits: number; resetTime: Date }> {
    let entry = this.live(key);
    if (!entry) {
      entry = { totalHits: 0, resetTime: new Date(Date.now() + this.windowMs) };
      this.entries.set(key, entry);
    }
    entry.totalHits++;
    return entry;
  }

  increment(key: string): IncrementResponse {
    const { totalHits, resetTime } = this.count(key);
    return { totalHits, resetTime };
  }

  decrement(key: string): void {
    const entry = this.live(key);
    if (entry && entry.totalHits > 0) entry.totalHits--;
  }

  resetKey(key: string): void {
    this.entries.delete(key);
  }

  resetAll(): void {
    this.entries.clear();
  }

  shutdown(): void {
    clearInterval(this.sweeper);
  }
}

export interface LimiterOptions {
  /** Names the limit in the RateLimit headers and in logs. */
  name: string;
  limit: number;
  windowMs: number;
  store: Store;
  key(req: Request): string;
  skip?(req: Request): boolean;
  /** Called for a request over the limit, after the headers are set; it answers the 429. */
  onLimited(req: Request, res: Response, next: NextFunction): void;
  logger: Logger;
}

/** Adds a value to a header that another limiter of the same request may have set already. */
function append(res: Response, name: string, value: string): void {
  const existing = res.getHeader(name);
  if (existing === undefined) res.setHeader(name, value);
  else res.setHeader(name, [...(Array.isArray(existing) ? existing : [String(existing)]), value]);
}

/** The policy's partition key: as express-rate-limit writes it (12 hex digits of SHA-256, base64). */
const partitionKey = (key: string) => Buffer.from(hash('sha256', key, 'hex').slice(0, 12)).toString('base64');

/**
 * What express-rate-limit checks of the deployment, checked on every request (it checks only the
 * first) and logged once per limiter and problem: each means clients are told apart by the wrong
 * address, so a per-address limit either lumps everyone together or can be dodged.
 */
function deploymentChecks(name: string, logger: Logger): (req: Request) => void {
  const warned = new Set<string>();
  const warn = (code: string, message: string) => {
    if (warned.has(code)) return;
    warned.add(code);
    logger.warn({ limiter: name, code }, message);
  };
  return (req) => {
    if (warned.size === 5) return;
    const trust: unknown = req.app.get('trust proxy');
    if (trust === true) warn('PERMISSIVE_TRUST_PROXY', 'TRUST_PROXY is true: any client can pick the address it is limited by (X-Forwarded-For)');
    if (trust === false && req.headers['x-forwarded-for'] !== undefined)
      warn('UNEXPECTED_X_FORWARDED_FOR', 'X-Forwarded-For arrives but TRUST_PROXY is off: every client behind the proxy shares one limit');
    const ip = req.ip;
    if (ip === undefined || !isIP(ip)) warn('NO_CLIENT_ADDRESS', 'a request without a usable client address: such requests share one limit');
    if (req.headers.forwarded !== undefined && ip === req.socket.remoteAddress)
      warn('FORWARDED_HEADER', 'a Forwarded header arrives; only X-Forwarded-For is read (TRUST_PROXY)');
    // A peer on a public address was trusted to name the client: TRUST_PROXY reaches past the proxies.
    if (ip !== req.socket.remoteAddress && isPublicAddress(req.socket.remoteAddress))
      warn('TRUSTED_PUBLIC_PEER', 'TRUST_PROXY trusted X-Forwarded-For from a public address: anyone there can pick the address it is limited by');
  };
}

/**
 * A fixed-window rate limit as one synchronous middleware when its store counts in memory (one
 * promise when it counts in Redis). It answers as express-rate-limit did with draft-8 headers
 * (rate-limit-headers.ts, with the partition key) on every answer, `Retry-After` on a refusal.
 * It saves express-rate-limit's awaits and its per-request deployment-check arguments; like that
 * library it still hashes the key (the partition key) and builds the header strings on every
 * request. What it replaces, the gain and when to delete it: docs/decisions/rate-limiter.md.
 */
export function rateLimiter(o: LimiterOptions): RequestHandler {
  const windowSeconds = Math.ceil(o.windowMs / 1000);
  const headers = rateLimitHeaders(o.name, o.limit, windowSeconds);
  const check = deploymentChecks(o.name, o.logger);
  Promise.resolve(o.store.init?.({ windowMs: o.windowMs } as Options)).catch((err: unknown) =>
    o.logger.error({ err, limiter: o.name }, 'rate-limit store failed to initialise'),
  );

  function settle(req: Request, res: Response, next: NextFunction, key: string, counted: IncrementResponse): void {
    const reset = counted.resetTime ? Math.max(0, Math.ceil((counted.resetTime.getTime() - Date.now()) / 1000)) : windowSeconds;
    if (!res.headersSent) {
      append(res, 'RateLimit-Policy', headers.policy(partitionKey(key)));
      append(res, 'RateLimit', headers.state(Math.max(o.limit - counted.totalHits, 0), reset));
    }
    if (counted.totalHits <= o.limit) return next();
    if (!res.headersSent) res.setHeader('Retry-After', String(reset));
    o.onLimited(req, res, next);
  }

  return (req, res, next) => {
    if (o.skip?.(req)) return next();
    check(req);
    const key = o.key(req);
    const counted = o.store instanceof MemoryCounter ? o.store.count(key) : o.store.increment(key);
    if (counted instanceof Promise) counted.then((c) => settle(req, res, next, key, c), next);
    else settle(req, res, next, key, counted);
  };
}
