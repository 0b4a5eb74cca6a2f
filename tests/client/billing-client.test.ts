/**
 * BillingClient.reportUsage without a queue, against a fake of POST /api/usage: keys, batches, safe
 * retries, replays, and what a caller gets back when the service did not acknowledge.
 */
import { BillingApiError, BillingClient, UsageReportError, type UsageReceipt } from '../../packages/client';
import { FakeUsageService } from './fake-usage-service';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
let svc: FakeUsageService;
const client = (o: Partial<ConstructorParameters<typeof BillingClient>[0]> = {}) =>
  new BillingClient({ baseUrl: svc.url, apiKey: 'test-key', backoffBaseMs: 5, backoffMaxMs: 20, ...o });

beforeEach(async () => {
  svc = new FakeUsageService();
  await svc.start();
});
afterEach(() => svc.stop());

describe('reportUsage without a queue', () => {
  test('when an event has no key, then a UUIDv4 is assigned and the receipt names it', async () => {
    const r = (await client().reportUsage({ metric: 'api_calls', quantity: 3 })) as UsageReceipt;
    expect(r.idempotencyKey).toMatch(UUID);
    expect(r).toMatchObject({ replayed: false, id: expect.any(String) });
    expect(svc.stored.has(r.idempotencyKey)).toBe(true);
  });

  test('when 2,500 events are reported with maxBatch 1000, then three batches of at most 1000 are sent and every event has a receipt in order', async () => {
    const events = Array.from({ length: 2500 }, (_, i) => ({ metric: 'api_calls', quantity: 1, idempotency_key: `k-${i}` }));
    const receipts = await client().reportUsage(events);
    expect(svc.requests.map((r) => r.length)).toEqual([1000, 1000, 500]);
    expect(receipts.map((r) => r.idempotencyKey)).toEqual(events.map((e) => e.idempotency_key));
    expect(svc.stored.size).toBe(2500);
  });

  test('when the service answers 503 then 429 with Retry-After, then the same keys are sent again and it counts once', async () => {
    svc.script.push({ status: 503, body: { error: { code: 'SERVICE_UNAVAILABLE', message: 'db' } } });
    svc.script.push({ status: 429, body: { error: { code: 'RATE_LIMITED', message: 'slow' } }, headers: { 'retry-after': '1' } });
    const started = Date.now();
    const receipts = await client().reportUsage([
      { metric: 'api_calls', quantity: 1 },
      { metric: 'api_calls', quantity: 2 },
    ]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(svc.requests).toHaveLength(3);
    expect(svc.requests[1]).toEqual(svc.requests[0]);
    expect(svc.requests[2]).toEqual(svc.requests[0]);
    expect(receipts.every((r) => r.replayed === false)).toBe(true);
    expect(svc.stored.size).toBe(2);
  });

  test('when the same events are reported again with their keys, then each is reported as replayed with the original id', async () => {
    const c = client();
    const first = await c.reportUsage([{ metric: 'api_calls', quantity: 1, idempotency_key: 'a' }]);
    const again = await c.reportUsage([{ metric: 'api_calls', quantity: 1, idempotency_key: 'a' }]);
    expect(again).toEqual([{ ...first[0], replayed: true }]);
  });

  test('when the service stays down, then UsageReportError holds the events with the keys they were sent with', async () => {
    const c = client({ maxRetries: 1 });
    await svc.stop();
    const err = (await c.reportUsage([{ metric: 'api_calls', quantity: 1 }]).catch((e: unknown) => e)) as UsageReportError;
    expect(err).toBeInstanceOf(UsageReportError);
    expect(err.pending).toHaveLength(1);
    expect((err.pending[0] as { idempotency_key: string }).idempotency_key).toMatch(UUID);
    expect((err.cause as Error).name).toBe('BillingNetworkError');
  });

  test('when the service refuses an event (422), then the cause is a BillingApiError with its code and details, and it is not retried', async () => {
    const err = (await client()
      .reportUsage({ metric: 'bad_metric', quantity: 1 })
      .catch((e: unknown) => e)) as UsageReportError;
    const cause = err.cause as BillingApiError;
    expect(cause).toBeInstanceOf(BillingApiError);
    expect(cause).toMatchObject({ status: 422, code: 'VALIDATION_FAILED', requestId: expect.any(String) });
    expect(svc.requests).toHaveLength(1);
  });

  test('when no baseUrl or apiKey is given, then BILLING_API_URL and BILLING_API_KEY are used, and without them a TypeError', async () => {
    const saved = { url: process.env.BILLING_API_URL, key: process.env.BILLING_API_KEY };
    try {
      process.env.BILLING_API_URL = svc.url;
      process.env.BILLING_API_KEY = 'test-key';
      const r = await new BillingClient({ backoffBaseMs: 5 }).reportUsage([{ metric: 'api_calls', quantity: 1 }]);
      expect(r).toHaveLength(1);
      delete process.env.BILLING_API_KEY;
      expect(() => new BillingClient()).toThrow(TypeError);
    } finally {
      process.env.BILLING_API_URL = saved.url;
      if (saved.key === undefined) delete process.env.BILLING_API_KEY;
      else process.env.BILLING_API_KEY = saved.key;
      if (saved.url === undefined) delete process.env.BILLING_API_URL;
    }
  });
});
