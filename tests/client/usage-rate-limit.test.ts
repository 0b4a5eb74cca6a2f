/**
 * The SDK against the real service at its seed's usage limit (RATE_LIMIT_USAGE from .env.example:
 * 60 requests an hour per customer): events reported one at a time, as an instance does, are all
 * stored with a handful of requests, so the hour's budget is never spent (the service's own
 * RateLimit header says how many it counted). Time cannot be faked here, so what is shown is the
 * number of requests; usage-pacing.test.ts shows the waiting on Retry-After and on the headers.
 */
import fs from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { BillingClient, type BillingClientOptions } from '../../packages/client';
import { parseRateLimit } from '../../packages/client/http';
import { createCustomer, type CreatedCustomer } from '../helpers/factories';
import { createTestApp, type TestApp } from '../helpers/test-app';

const seed = (name: string) => {
  const line = fs
    .readFileSync(path.resolve(__dirname, '../../.env.example'), 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}=`));
  if (!line) throw new Error(`${name} is not in .env.example`);
  return line.slice(name.length + 1).trim();
};

let t: TestApp;
let server: Server;
let baseUrl: string;
let work: string;
const open: BillingClient[] = [];

beforeAll(async () => {
  expect(seed('RATE_LIMIT_USAGE')).toBe('60/1h');
  t = await createTestApp({
    RATE_LIMIT_USAGE: seed('RATE_LIMIT_USAGE'),
    RATE_LIMIT_USAGE_ADDRESS: seed('RATE_LIMIT_USAGE_ADDRESS'),
    USAGE_MAX_BATCH: seed('USAGE_MAX_BATCH'),
  });
  server = t.app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-rate-'));
});
afterAll(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await t.close();
  fs.rmSync(work, { recursive: true, force: true });
});

/** A client of the customer's whose requests to POST /api/usage are counted, with the last `usage` limit the service stated. */
function instance(customer: CreatedCustomer, o: Partial<BillingClientOptions> = {}) {
  const seen = { requests: 0, statuses: [] as number[], remaining: null as number | null };
  const counting: typeof fetch = async (input, init) => {
    const res = await fetch(input, init);
    if (init?.method === 'POST') {
      seen.requests += 1;
      seen.statuses.push(res.status);
      const usage = parseRateLimit(res.headers).find((l) => l.policy === 'usage');
      if (usage) seen.remaining = usage.remaining;
    }
    return res;
  };
  const c = new BillingClient({ baseUrl, apiKey: customer.apiKey, queueDir: fs.mkdtempSync(path.join(work, 'queue-')), fetch: counting, ...o });
  open.push(c);
  return { c, seen };
}

const stored = async (customerId: string) => Number((await t.db('usage_events').where({ customer_id: customerId }).count<{ n: string }[]>({ n: '*' }))[0]!.n);

describe('usage at the default limit of 60 requests an hour', () => {
  test('when 400 events are reported one at a time with the default options, then all 400 are stored with at most 3 requests of the hour’s 60', async () => {
    const customer = await createCustomer(t);
    const { c, seen } = instance(customer);
    for (let i = 0; i < 400; i++) await c.reportUsage({ metric: 'api_calls', quantity: 1 });
    // The instance shuts down (or an hour goes by): whatever is queued goes now.
    await c.flush();
    expect(await stored(customer.id)).toBe(400);
    expect(seen.statuses.every((s) => s === 201)).toBe(true);
    expect(seen.requests).toBeGreaterThanOrEqual(1);
    expect(seen.requests).toBeLessThanOrEqual(3);
    // The service counted the same: 60 minus what it says is left.
    expect(60 - seen.remaining!).toBe(seen.requests);
  });

  test('when the flush interval is set to 1 s (what once spent the hour’s budget in a minute), then the service’s RateLimit header still holds the flusher to one partial batch a minute', async () => {
    const customer = await createCustomer(t);
    const { c, seen } = instance(customer, { flushIntervalMs: 1000 });
    const started = Date.now();
    let n = 0;
    // 400 events over about 4 s: four of the old flusher's rounds, each a request.
    while (Date.now() - started < 4000) {
      await c.reportUsage(Array.from({ length: 5 }, () => ({ metric: 'api_calls', quantity: 1 })));
      n += 5;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(seen.requests).toBeLessThanOrEqual(1);
    await c.flush();
    expect(await stored(customer.id)).toBe(n);
    expect(seen.requests).toBeLessThanOrEqual(2);
    expect(60 - seen.remaining!).toBe(seen.requests);
  });

  test('when 2,500 events wait in the queue, then the background flusher sends two full batches of 1000 at once and the rest when the pacing allows, 3 requests in all', async () => {
    const customer = await createCustomer(t);
    const { c, seen } = instance(customer);
    await c.reportUsage(Array.from({ length: 2500 }, () => ({ metric: 'api_calls', quantity: 1 })));
    const end = Date.now() + 20_000;
    // The second answer is counted as it arrives; the flusher acknowledges its batch just after.
    while ((seen.requests < 2 || (await c.queued()).events > 500) && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
    expect(await stored(customer.id)).toBe(2000);
    expect(await c.queued()).toMatchObject({ events: 500 });
    await c.flush();
    expect(await stored(customer.id)).toBe(2500);
    expect(seen.requests).toBe(3);
    expect(seen.remaining).toBe(57);
  });
});
