/**
 * The queue's flusher paces itself by what the service says: it waits out a Retry-After instead of
 * hammering, sends nothing while a limit has no request left, spends the requests left on full
 * batches and sends a partial batch only as often as they allow. Against a fake of POST /api/usage
 * whose answers carry the headers the service sends (src/security/rate-limiter.ts); the real service
 * at its default limit is in usage-rate-limit.test.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BillingClient, type BillingClientOptions } from '../../packages/client';
import { DEFAULT_FLUSH_INTERVAL_MS } from '../../packages/client/billing-client';
import { parseRateLimit } from '../../packages/client/http';
import { UsagePacer } from '../../packages/client/usage-pacer';
import { FakeUsageService } from './fake-usage-service';

let svc: FakeUsageService;
let dir: string;
const open: BillingClient[] = [];
const client = (o: Partial<BillingClientOptions> = {}) => {
  const c = new BillingClient({
    baseUrl: svc.url,
    apiKey: 'test-key',
    queueDir: dir,
    backoffBaseMs: 5,
    backoffMaxMs: 20,
    maxRetries: 0,
    flushIntervalMs: 20,
    ...o,
  });
  open.push(c);
  return c;
};
const events = (from: number, n: number) => Array.from({ length: n }, (_, i) => ({ metric: 'api_calls', quantity: 1, idempotency_key: `p-${from + i}` }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(10);
  }
}

beforeEach(async () => {
  svc = new FakeUsageService();
  await svc.start();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-pacing-'));
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
  await svc.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('the RateLimit headers', () => {
  test('when an answer carries two limiters’ draft-8 headers, then both are read with their policies', () => {
    const h = new Headers();
    h.append('RateLimit-Policy', '"usageAddress"; q=600; w=60; pk=:YWJjZGVm:');
    h.append('RateLimit-Policy', '"usage"; q=60; w=3600; pk=:MTIzNDU2:');
    h.append('RateLimit', '"usageAddress"; r=599; t=60');
    h.append('RateLimit', '"usage"; r=0; t=3512');
    expect(parseRateLimit(h)).toEqual([
      { policy: 'usageAddress', remaining: 599, resetSeconds: 60, quota: 600, windowSeconds: 60 },
      { policy: 'usage', remaining: 0, resetSeconds: 3512, quota: 60, windowSeconds: 3600 },
    ]);
    expect(parseRateLimit(new Headers({ RateLimit: 'garbage; r=x' }))).toEqual([]);
  });

  test('when a limit has r requests left for t seconds, then a partial batch waits t/r and a full one only for an exhausted limit', () => {
    let now = 1_000_000;
    const pacer = new UsagePacer(() => now);
    pacer.observe(201, new Headers({ RateLimit: '"usage"; r=59; t=3540' }));
    expect(pacer.holdMs()).toBe(0);
    expect(pacer.partialMs()).toBe(60_000);
    now += 60_000;
    expect(pacer.partialMs()).toBe(0);
    pacer.observe(201, new Headers({ RateLimit: '"usage"; r=0; t=120, "usageAddress"; r=500; t=30' }));
    expect(pacer.holdMs()).toBe(120_000);
    pacer.observe(429, new Headers({ 'Retry-After': '300' }));
    expect(pacer.holdMs()).toBe(300_000);
  });

  test('the default flush interval carries at least 60,000 events an hour at the default limit of 60 requests an hour', () => {
    const requestsPerHour = 60;
    const maxBatch = 1000; // the service's USAGE_MAX_BATCH default, and the SDK's
    expect(Math.floor(3_600_000 / DEFAULT_FLUSH_INTERVAL_MS)).toBeLessThanOrEqual(requestsPerHour);
    expect(requestsPerHour * maxBatch).toBeGreaterThanOrEqual(60_000);
  });
});

describe('the background flusher', () => {
  test('when the service answers 429 with Retry-After: 2, then the next request comes no sooner than 2 s later, with the same events, and nothing in between', async () => {
    svc.script.push({
      status: 429,
      body: { error: { code: 'RATE_LIMITED', message: 'slow down' } },
      headers: { 'retry-after': '2', ratelimit: '"usage"; r=0; t=2' },
    });
    const c = client();
    await c.reportUsage(events(0, 3));
    await until(() => svc.stored.size === 3);
    expect(svc.requests).toHaveLength(2);
    expect(svc.requests[1]).toEqual(svc.requests[0]);
    expect(svc.times[1]! - svc.times[0]!).toBeGreaterThanOrEqual(1990);
  });

  test('when an answer says the limit has no request left for 2 s, then the next batch waits 2 s and is never refused', async () => {
    svc.answerHeaders = { ratelimit: '"usage"; r=0; t=2' };
    const c = client();
    await c.reportUsage(events(0, 1));
    await until(() => svc.stored.size === 1);
    svc.answerHeaders = {};
    await c.reportUsage(events(1, 1));
    await until(() => svc.stored.size === 2);
    expect(svc.requests).toEqual([['p-0'], ['p-1']]);
    expect(svc.times[1]! - svc.times[0]!).toBeGreaterThanOrEqual(1990);
  });

  test('when requests are scarce (59 left for an hour), then a partial batch waits while a full batch goes at once, whatever flushIntervalMs says', async () => {
    svc.answerHeaders = { ratelimit: '"usage"; r=59; t=3599', 'ratelimit-policy': '"usage"; q=60; w=3600; pk=:MTIzNDU2:' };
    const c = client({ maxBatch: 10, flushIntervalMs: 20 });
    await c.reportUsage(events(0, 1));
    await until(() => svc.stored.size === 1);
    await c.reportUsage(events(1, 4));
    await sleep(500);
    // 25 rounds of 20 ms went by: the 4 events wait to fill a batch.
    expect(svc.requests).toHaveLength(1);
    await c.reportUsage(events(5, 8));
    await until(() => svc.requests.length === 2);
    expect(svc.requests[1]).toEqual(events(1, 10).map((e) => e.idempotency_key));
    await sleep(300);
    expect(svc.requests).toHaveLength(2);
    expect(await c.queued()).toMatchObject({ events: 2 });
    // flush() sends what is left at once: the caller asked for it.
    expect(await c.flush()).toMatchObject({ sent: 2 });
  });

  test('when the service sends no RateLimit header, then the flusher sends every interval as before', async () => {
    const c = client({ flushIntervalMs: 20 });
    await c.reportUsage(events(0, 1));
    await until(() => svc.stored.size === 1);
    await c.reportUsage(events(1, 1));
    await until(() => svc.stored.size === 2);
    expect(svc.times[1]! - svc.times[0]!).toBeLessThan(1000);
  });
});
