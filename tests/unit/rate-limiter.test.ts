import { createHash } from 'node:crypto';
import express, { type Request } from 'express';
import { ipKeyGenerator } from 'express-rate-limit';
import request from 'supertest';
import { createClient } from 'redis';
import { RedisStore } from 'rate-limit-redis';
import { createLogger } from '../../src/logger';
import { MemoryCounter, rateLimiter } from '../../src/security/rate-limiter';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ logLevel: 'info', logPretty: false }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  return { logger, warnings: () => lines.filter((l) => l.level === 40) };
}

function app(opts: { trustProxy?: unknown; limit?: number; windowMs?: number; names?: string[]; store?: () => MemoryCounter | RedisStore } = {}) {
  const { logger, warnings } = capture();
  const a = express();
  a.set('trust proxy', opts.trustProxy ?? false);
  const stores: (MemoryCounter | RedisStore)[] = [];
  for (const name of opts.names ?? ['test']) {
    const store = opts.store?.() ?? new MemoryCounter();
    stores.push(store);
    a.use(
      rateLimiter({
        name,
        limit: opts.limit ?? 10,
        windowMs: opts.windowMs ?? 60_000,
        store,
        key: (req: Request) => ipKeyGenerator(req.ip ?? 'unknown'),
        logger,
        onLimited: (_req, res) => void res.status(429).json({ error: { code: 'RATE_LIMITED' } }),
      }),
    );
  }
  a.get('/', (_req, res) => void res.json({ ok: true }));
  return { app: a, warnings, stores };
}

describe('rateLimiter', () => {
  test('when 40 requests arrive at once against a limit of 10, then exactly 10 pass and the rest get 429 with Retry-After', async () => {
    const { app: a } = app({ limit: 10 });
    const answers = await Promise.all(Array.from({ length: 40 }, () => request(a).get('/')));
    expect(answers.filter((r) => r.status === 200)).toHaveLength(10);
    const refused = answers.filter((r) => r.status === 429);
    expect(refused).toHaveLength(30);
    for (const r of refused) {
      expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
      expect(r.headers.ratelimit).toMatch(/^"test"; r=0; t=\d+$/);
    }
    // Every answer says how much is left; the passed ones count down from 9 to 0.
    const remaining = answers.filter((r) => r.status === 200).map((r) => Number(/r=(\d+)/.exec(String(r.headers.ratelimit))![1]));
    expect(remaining.sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  test('when two limits apply to one request, then both are named in each draft-8 header, with the partition key express-rate-limit wrote', async () => {
    const { app: a } = app({ names: ['outer', 'inner'], limit: 5, windowMs: 30_000 });
    const res = await request(a).get('/').expect(200);
    const pk = Buffer.from(createHash('sha256').update(ipKeyGenerator('::ffff:127.0.0.1')).digest('hex').slice(0, 12)).toString('base64');
    expect(res.headers['ratelimit-policy']).toBe(`"outer"; q=5; w=30; pk=:${pk}:, "inner"; q=5; w=30; pk=:${pk}:`);
    expect(res.headers.ratelimit).toMatch(/^"outer"; r=4; t=(29|30), "inner"; r=4; t=(29|30)$/);
  });

  test('when the window ends, then the count starts again', async () => {
    const { app: a } = app({ limit: 1, windowMs: 300 });
    await request(a).get('/').expect(200);
    await request(a).get('/').expect(429);
    await sleep(350);
    await request(a).get('/').expect(200);
  });

  test('when X-Forwarded-For arrives with trust proxy off, then it changes nothing and one warning is logged', async () => {
    const { app: a, warnings } = app({ limit: 2 });
    // Spoofed addresses: the limit stays on the connection's address.
    for (const ip of ['1.1.1.1', '2.2.2.2']) await request(a).get('/').set('X-Forwarded-For', ip).expect(200);
    await request(a).get('/').set('X-Forwarded-For', '3.3.3.3').expect(429);
    expect(warnings().map((w) => w.code)).toEqual(['UNEXPECTED_X_FORWARDED_FOR']);
  });

  test('when the first requests carry no X-Forwarded-For, then a later one is still noticed', async () => {
    const { app: a, warnings } = app();
    await request(a).get('/').expect(200);
    await request(a).get('/').expect(200);
    expect(warnings()).toEqual([]);
    await request(a).get('/').set('X-Forwarded-For', '1.1.1.1').expect(200);
    expect(warnings().map((w) => w.code)).toEqual(['UNEXPECTED_X_FORWARDED_FOR']);
  });

  test('when trust proxy is true, then the permissive setting is logged; with a hop count nothing is', async () => {
    const permissive = app({ trustProxy: true });
    await request(permissive.app).get('/').set('X-Forwarded-For', '1.1.1.1').expect(200);
    expect(permissive.warnings().map((w) => w.code)).toEqual(['PERMISSIVE_TRUST_PROXY']);
    const hops = app({ trustProxy: 1 });
    await request(hops.app).get('/').set('X-Forwarded-For', '1.1.1.1').expect(200);
    expect(hops.warnings()).toEqual([]);
  });

  test('when a Forwarded header arrives, then it is logged as ignored', async () => {
    const { app: a, warnings } = app();
    await request(a).get('/').set('Forwarded', 'for=1.1.1.1').expect(200);
    expect(warnings().map((w) => w.code)).toEqual(['FORWARDED_HEADER']);
  });

  test('when the store counts in Redis (a promise per hit), then the limit holds for concurrent requests too', async () => {
    const redis = createClient({ url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' });
    await redis.connect();
    try {
      const prefix = `billing:test:rl:${Date.now()}:`;
      const { app: a } = app({ limit: 5, store: () => new RedisStore({ prefix, sendCommand: (...args: string[]) => redis.sendCommand(args) }) });
      const answers = await Promise.all(Array.from({ length: 20 }, () => request(a).get('/')));
      expect(answers.map((r) => r.status).sort()).toEqual([...Array<number>(5).fill(200), ...Array<number>(15).fill(429)]);
      expect(answers.find((r) => r.status === 429)!.headers['retry-after']).toBeDefined();
    } finally {
      await redis.quit();
    }
  });
});

describe('MemoryCounter', () => {
  /** A counter with the given window for the length of one test. */
  async function withCounter(windowMs: number, use: (c: MemoryCounter) => Promise<void> | void): Promise<void> {
    const c = new MemoryCounter();
    c.init({ windowMs });
    try {
      await use(c);
    } finally {
      c.shutdown();
    }
  }

  test('when a key is hit, then it counts within its window, gives back on decrement and forgets on reset', () =>
    withCounter(60_000, (c) => {
      expect(c.increment('a').totalHits).toBe(1);
      expect(c.increment('a').totalHits).toBe(2);
      expect(c.increment('b').totalHits).toBe(1);
      c.decrement('a');
      expect(c.get('a')?.totalHits).toBe(1);
      c.resetKey('a');
      expect(c.get('a')).toBeUndefined();
      expect(c.increment('a').resetTime!.getTime()).toBeGreaterThan(Date.now() + 59_000);
    }));

  test('when hits are counted back to back, then each answer keeps its own count (callers read them later)', () =>
    withCounter(60_000, async (c) => {
      const answers = [c.increment('k'), c.increment('k'), c.increment('k')];
      expect(answers.map((a) => a.totalHits)).toEqual([1, 2, 3]);
      // As the failed-authentication guard reads them: after a turn of the event loop.
      const read = await Promise.all(answers.map((a) => Promise.resolve(a).then(({ totalHits }) => totalHits)));
      expect(read).toEqual([1, 2, 3]);
      // The limiter's own read, at once and without a copy, counts on.
      expect(c.count('k').totalHits).toBe(4);
    }));

  test('when a window has passed, then its entries are swept', () =>
    withCounter(100, async (c) => {
      c.increment('gone');
      await sleep(250);
      expect((c as unknown as { entries: Map<string, unknown> }).entries.size).toBe(0);
      expect(c.increment('gone').totalHits).toBe(1);
    }));
});
