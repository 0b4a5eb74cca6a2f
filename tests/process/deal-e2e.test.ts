/**
 * Issue 21's check, end to end against two real server processes: a customer whose deal is unlike
 * its plan (a feature removed and one added, twice the instances, ten times the allowance, a 1.25
 * tolerance, its own thresholds) is driven across its thresholds by two instances at once, each
 * reporting through its own server with the client package's durable queue. The events written, the
 * license claims and the offline helper's decisions (with the servers down, and after the instance
 * restarts) are compared with what the deal says.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client as PgClient } from 'pg';
import { BillingClient, InstanceLimitReachedError, type BillingClientOptions } from '../../packages/client';
import { generateSigningKey, publicJwk } from '../../src/modules/licenses/signing-keys';
import { testDatabaseUrl } from '../helpers/test-app';
import { call, freePort, type Running, startServer, waitFor } from '../helpers/server-process';

const ADMIN = randomBytes(32).toString('hex');
const SIGNING = generateSigningKey();
const TRUSTED_KEYS = { keys: [publicJwk(SIGNING)] };
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-deal-e2e-'));
fs.chmodSync(work, 0o755);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Server {
  name: string;
  port: number;
  r: Running | null;
}
const servers: Server[] = [];
const clients: BillingClient[] = [];
let db: PgClient;

async function up(s: Server): Promise<void> {
  const r = startServer({
    NODE_ENV: 'test',
    DATABASE_URL: testDatabaseUrl(),
    PORT: String(s.port),
    DATA_DIR: path.join(work, s.name),
    ADMIN_API_TOKEN: ADMIN,
    LICENSE_SIGNING_KEYS: JSON.stringify(SIGNING),
    RATE_LIMIT_USAGE: '100000/1m',
    RATE_LIMIT_USAGE_ADDRESS: '100000/1m',
    RATE_LIMIT_API: '100000/1m',
  });
  s.r = r;
  await waitFor(r, /listening/, 120_000);
}

async function down(s: Server): Promise<void> {
  const r = s.r;
  s.r = null;
  if (!r || r.child.exitCode !== null) return;
  r.child.kill('SIGTERM');
  await r.exited;
}

type Json = Record<string, any>;
async function admin(s: Server, method: string, p: string, status: number, body?: unknown): Promise<Json> {
  const res = await call(
    s.port,
    method,
    p,
    { Authorization: `Bearer ${ADMIN}`, 'Content-Type': 'application/json' },
    body === undefined ? undefined : JSON.stringify(body),
  );
  if (res.status !== status) throw new Error(`${s.name} ${method} ${p}: expected ${status}, got ${res.status} ${res.body}`);
  return JSON.parse(res.body || 'null') as Json;
}

function instance(s: Server, apiKey: string, name: string): BillingClient {
  const o: BillingClientOptions = {
    baseUrl: `http://127.0.0.1:${s.port}`,
    apiKey,
    queueDir: path.join(work, `${name}-queue`),
    flushIntervalMs: 3_600_000, // flushed by the test, so each step is known to have reached the service
    backoffBaseMs: 50,
    backoffMaxMs: 200,
    maxRetries: 1,
    timeoutMs: 5_000,
    license: { fingerprint: `instance-${name}-0001`, dir: path.join(work, `${name}-license`), trustedKeys: TRUSTED_KEYS },
  };
  const c = new BillingClient(o);
  clients.push(c);
  return c;
}

/** The usage events of this customer, as the events table holds them, oldest first. */
async function usageEvents(customerId: string): Promise<{ type: string; data: Json }[]> {
  const { rows } = await db.query(`select type, data from events where customer_id = $1 and type like 'usage.%' order by id`, [customerId]);
  return rows as { type: string; data: Json }[];
}

async function until(what: string, check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

beforeAll(async () => {
  db = new PgClient({ connectionString: testDatabaseUrl() });
  await db.connect();
  for (const name of ['a', 'b']) servers.push({ name, port: await freePort(), r: null });
  await Promise.all(servers.map(up));
}, 180_000);

afterAll(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  await Promise.all(servers.map(down));
  await db.end();
  fs.rmSync(work, { recursive: true, force: true });
});

test('a deal unlike its plan, driven across its thresholds by two instances at once: events, license claims and offline decisions follow the deal', async () => {
  const [a, b] = servers as [Server, Server];
  const code = `deal-e2e-${randomBytes(4).toString('hex')}`;
  // The plan: 1 instance, 100 api_calls a month, blocked at 100%, told at 80 and 100.
  await admin(a, 'POST', '/api/plans', 201, {
    code,
    name: 'Deal e2e',
    entitlements: { features: ['reports'], limits: { instances: 1, api_calls: 100 }, overage: { api_calls: 'block' }, thresholds: [80, 100] },
  });
  const created = await admin(a, 'POST', '/api/customers', 201, { email: `deal-e2e-${randomBytes(4).toString('hex')}@example.com`, company_name: 'Deal e2e' });
  const customerId = created.customer.id as string;
  const apiKey = created.api_key as string;
  const sub = await admin(b, 'POST', `/api/customers/${customerId}/subscriptions`, 201, { plan: code });
  const periodStart = sub.subscription.current_period_start as string;
  const periodEnd = sub.subscription.current_period_end as string;

  // The deal: sso instead of reports, 2 instances, 1000 api_calls with 25% tolerated, told at 50, 90 and 100.
  const deal = await admin(b, 'PUT', `/api/customers/${customerId}/entitlements`, 200, {
    features: { add: ['sso'], remove: ['reports'] },
    limits: { api_calls: 1000 },
    instances: 2,
    overage: { api_calls: 1.25 },
    thresholds: [100, 50, 90],
    note: 'pilot deal',
  });
  expect(deal.effective).toEqual({ features: ['sso'], limits: { instances: 2, api_calls: 1000 }, overage: { api_calls: 1.25 }, thresholds: [50, 90, 100] });

  // Two instances, one per server: the deal's 2 instances let both in, a third is refused.
  const one = instance(a, apiKey, 'one');
  const two = instance(b, apiKey, 'two');
  await one.activate();
  await two.activate();
  const third = instance(a, apiKey, 'three');
  await expect(third.activate()).rejects.toBeInstanceOf(InstanceLimitReachedError);

  // 1. Both report at once, in 24 rounds of 25 each: 1200 api_calls (120%), past 50, 90 and 100 but within the tolerance.
  for (let round = 0; round < 24; round++) {
    await Promise.all([one.reportUsage({ metric: 'api_calls', quantity: 25 }), two.reportUsage({ metric: 'api_calls', quantity: 25 })]);
    await Promise.all([one.flush(), two.flush()]);
  }
  await until('three threshold events', async () => (await usageEvents(customerId)).length >= 3);
  await sleep(1_000); // anything announced twice would be here by now (a round of the watch is ~50 ms)
  let events = await usageEvents(customerId);
  expect(events.map((e) => [e.type, e.data.threshold_percent])).toEqual([
    ['usage.threshold_crossed', 50],
    ['usage.threshold_crossed', 90],
    ['usage.threshold_crossed', 100],
  ]);
  for (const e of events) {
    expect(e.data).toMatchObject({ customer_id: customerId, metric: 'api_calls', allowance: 1000, period_start: periodStart, period_end: periodEnd });
    // Seen when the watch read the totals: at or past the threshold, never more than was reported.
    expect(Number(e.data.quantity)).toBeGreaterThanOrEqual(e.data.threshold_percent * 10);
    expect(Number(e.data.quantity)).toBeLessThanOrEqual(1200);
  }

  // 2. The license carries the deal, and the figures as of issue.
  const license = await one.getLicense();
  expect(license.offline).toBe(false);
  expect(license.claims.entitlements).toEqual({ features: ['sso'], limits: { instances: 2, api_calls: 1000 } });
  expect(license.claims.metered.api_calls).toEqual({
    allowance: 1000,
    used: '1200',
    percent: 120,
    thresholds: [50, 90, 100],
    thresholds_crossed: [50, 90, 100],
    overage: 1.25,
    blocks_at: '1250',
    state: 'over_tolerated',
  });
  expect(license.metered.api_calls?.state).toBe('over_tolerated');
  expect(await license.allows('api_calls', 50)).toBe(true);
  expect(await license.allows('api_calls', 51)).toBe(false);
  const twoLicense = await two.getLicense();
  expect(twoLicense.claims.metered.api_calls).toMatchObject({ used: '1200', state: 'over_tolerated' });

  // 3. Offline: both servers down. Instance one reports 30 more (queued, never sent); its helper counts them.
  await Promise.all(servers.map(down));
  await one.reportUsage({ metric: 'api_calls', quantity: 30 });
  expect(await license.allows('api_calls', 20)).toBe(true);
  expect(await license.allows('api_calls', 21)).toBe(false);
  expect(await license.usage('api_calls')).toMatchObject({ used: '1230', state: 'over_tolerated' });
  // Instance two decides from its own license and its own reports: it has not seen one's 30.
  expect(await twoLicense.allows('api_calls', 50)).toBe(true);
  expect(await twoLicense.allows('api_calls', 51)).toBe(false);
  // Instance one restarts, still offline: the kept license, its ledger and its queue give the same answers.
  await one.close();
  const oneAgain = instance(a, apiKey, 'one');
  const kept = await oneAgain.getLicense();
  expect(kept.offline).toBe(true);
  expect(await kept.allows('api_calls', 20)).toBe(true);
  expect(await kept.allows('api_calls', 21)).toBe(false);

  // 4. Back online: the queue reaches the service, both push past the tolerance at once: exhausted, once.
  await Promise.all(servers.map(up));
  await oneAgain.flush();
  await Promise.all([oneAgain.reportUsage({ metric: 'api_calls', quantity: 20 }), two.reportUsage({ metric: 'api_calls', quantity: 20 })]);
  await Promise.all([oneAgain.flush(), two.flush()]);
  await until('the allowance exhausted', async () => (await usageEvents(customerId)).some((e) => e.type === 'usage.allowance_exhausted'));
  await sleep(1_000);
  events = await usageEvents(customerId);
  expect(events.map((e) => e.type)).toEqual(['usage.threshold_crossed', 'usage.threshold_crossed', 'usage.threshold_crossed', 'usage.allowance_exhausted']);
  expect(events[3]!.data).toMatchObject({ customer_id: customerId, metric: 'api_calls', allowance: 1000, overage: 1.25, blocks_at: '1250' });
  const after = await oneAgain.getLicense();
  expect(after.claims.metered.api_calls).toMatchObject({ used: '1270', state: 'blocked' });
  expect(await after.allows('api_calls', 1)).toBe(false);
}, 240_000);
