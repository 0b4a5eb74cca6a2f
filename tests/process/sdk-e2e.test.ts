/**
 * The SDK against the real server process: usage reported through outages (the server stopped, the
 * instance restarted while offline, the server killed with SIGKILL in the middle of a flush), each
 * event stored exactly once, checked in the database; then licenses activated, fetched and verified
 * offline.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client as PgClient } from 'pg';
import { BillingApiError, BillingClient, InstanceLimitReachedError, type BillingClientOptions } from '../../packages/client';
import { signKeySet } from '../../src/modules/licenses/key-set';
import { generateSigningKey, publicJwk } from '../../src/modules/licenses/signing-keys';
import { testDatabaseUrl } from '../helpers/test-app';
import { call, freePort, type Running, startServer, waitFor } from '../helpers/server-process';

const ADMIN = randomBytes(32).toString('hex');
// What the vendor holds: the signing key the service uses, and a root kept offline whose public key the
// software embeds; the service publishes the key set the root signed (LICENSE_KEY_SET).
const SIGNING = generateSigningKey();
const ROOT = generateSigningKey();
const KEY_SET = signKeySet(ROOT, [publicJwk(SIGNING)], { issuer: 'billing-service', iat: Math.floor(Date.now() / 1000), days: 30 });
const TRUSTED_ROOTS = { keys: [publicJwk(ROOT)] };
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-sdk-e2e-'));
fs.chmodSync(work, 0o755);
let port: number;
let server: Running | null = null;
let db: PgClient;
const clients: BillingClient[] = [];

async function up(): Promise<void> {
  if (server) return;
  const r = startServer({
    NODE_ENV: 'test',
    DATABASE_URL: testDatabaseUrl(),
    PORT: String(port),
    DATA_DIR: path.join(work, 'data'),
    ADMIN_API_TOKEN: ADMIN,
    LICENSE_SIGNING_KEYS: JSON.stringify(SIGNING),
    LICENSE_KEY_SET: KEY_SET,
    RATE_LIMIT_USAGE: '100000/1m',
    RATE_LIMIT_USAGE_ADDRESS: '100000/1m',
    RATE_LIMIT_API: '100000/1m',
  });
  await waitFor(r, /listening/, 60_000);
  server = r;
}

async function down(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const r = server;
  server = null;
  if (!r || r.child.exitCode !== null || r.child.signalCode !== null) return;
  r.child.kill(signal);
  await r.exited;
}

const admin = async (method: string, p: string, body?: unknown) => {
  const res = await call(
    port,
    method,
    p,
    { Authorization: `Bearer ${ADMIN}`, 'Content-Type': 'application/json' },
    body === undefined ? undefined : JSON.stringify(body),
  );
  return { status: res.status, body: JSON.parse(res.body || 'null') as Record<string, any> };
};

async function newCustomer(): Promise<{ id: string; apiKey: string }> {
  const res = await admin('POST', '/api/customers', { email: `sdk-${randomBytes(6).toString('hex')}@example.com`, company_name: 'SDK e2e' });
  expect(res.status).toBe(201);
  return { id: res.body.customer.id, apiKey: res.body.api_key };
}

const sdk = (apiKey: string, o: Partial<BillingClientOptions> = {}) => {
  const c = new BillingClient({ baseUrl: `http://127.0.0.1:${port}`, apiKey, backoffBaseMs: 50, backoffMaxMs: 500, maxRetries: 2, timeoutMs: 5_000, ...o });
  clients.push(c);
  return c;
};

/** idempotency key -> rows stored with it, for one customer. */
async function rowsByKey(customerId: string): Promise<Map<string, number>> {
  const { rows } = await db.query<{ k: string; n: string }>(
    'select idempotency_key as k, count(*) as n from usage_events where customer_id = $1 group by idempotency_key',
    [customerId],
  );
  return new Map(rows.map((r) => [r.k, Number(r.n)]));
}

function expectExactlyOnce(stored: Map<string, number>, keys: string[]): void {
  const missing = keys.filter((k) => !stored.has(k));
  const twice = [...stored].filter(([, n]) => n !== 1).map(([k]) => k);
  expect({ missing, twice, stored: stored.size }).toEqual({ missing: [], twice: [], stored: keys.length });
}

const events = (n: number, tag: string) => Array.from({ length: n }, (_, i) => ({ metric: 'api_calls', quantity: 1, idempotency_key: `${tag}-${i}` }));

beforeAll(async () => {
  port = await freePort();
  db = new PgClient({ connectionString: testDatabaseUrl() });
  await db.connect();
  await up();
}, 90_000);
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await down();
  await db.end();
  fs.rmSync(work, { recursive: true, force: true });
});

describe('usage through outages', () => {
  test('when the server stops, the instance restarts offline and the server comes back on the same port, then every event is stored exactly once and reads back', async () => {
    const customer = await newCustomer();
    const queueDir = path.join(work, 'queue-outage');
    const first = sdk(customer.apiKey, { queueDir, flushIntervalMs: 100 });
    expect((await first.me()).customer.id).toBe(customer.id);

    const before = await first.reportUsage(events(50, 'online'));
    expect(before.every((r) => r.queued)).toBe(true);
    expect(await first.flush()).toMatchObject({ sent: 50, replayed: 0 });

    await down();
    const offline = [...events(40, 'offline-a'), ...events(40, 'offline-b')];
    await first.reportUsage(offline.slice(0, 40));
    await first.reportUsage(offline.slice(40));
    // Keys the SDK makes itself, queued with the events.
    const generated = await first.reportUsage(Array.from({ length: 20 }, () => ({ metric: 'api_calls', quantity: 1 })));
    await first.close(); // the instance restarts while the server is down

    const second = sdk(customer.apiKey, { queueDir, flushIntervalMs: 100 });
    await second.reportUsage(events(30, 'after-restart'));
    expect(await second.queued()).toMatchObject({ events: 130 });
    await expect(second.flush()).rejects.toThrow(/could not reach/);

    await up();
    await second.flush();
    expect(await second.queued()).toMatchObject({ events: 0 });

    const keys = [...events(50, 'online'), ...offline, ...events(30, 'after-restart')]
      .map((e) => e.idempotency_key)
      .concat(generated.map((g) => g.idempotencyKey));
    expectExactlyOnce(await rowsByKey(customer.id), keys);
    expect(await second.deadLetters()).toEqual([]);

    const now = Date.now();
    const usage = await second.getUsage({ from: new Date(now - 86_400_000), to: new Date(now + 86_400_000) });
    expect(usage.totals).toEqual([{ metric: 'api_calls', quantity: '180', events: 180 }]);
  }, 120_000);

  test('when the server is killed (SIGKILL) at random points during a flush, several times, then no event is lost and none is stored twice', async () => {
    const customer = await newCustomer();
    const queueDir = path.join(work, 'queue-kill');
    const keys: string[] = [];
    let killedDuring = 0;
    for (let round = 0; round < 3; round++) {
      // The instance restarts between rounds too: every round is a new client on the directory.
      const c = sdk(customer.apiKey, { queueDir, maxBatch: 25, flushIntervalMs: 60_000 });
      const batch = events(1000, `kill-${round}`);
      keys.push(...batch.map((e) => e.idempotency_key));
      await c.reportUsage(batch);
      let settled = false;
      const flushing = c.flush().then(
        () => (settled = true),
        () => (settled = true),
      );
      // Killed at a random point of the flush: once a random share of the events (10-90%) is
      // acknowledged, by progress rather than by time (the flush takes a few tens of ms).
      const leftAtKill = Math.floor(batch.length * (0.1 + Math.random() * 0.8));
      while (!settled && (await c.queued()).events > leftAtKill) await new Promise((r) => setTimeout(r, 1));
      const partial = (await c.queued()).events;
      if (partial > 0 && partial < batch.length) killedDuring += 1;
      await down('SIGKILL');
      await flushing;
      await up();
      await c.flush();
      expect(await c.queued()).toMatchObject({ events: 0 });
      await c.close();
    }
    expectExactlyOnce(await rowsByKey(customer.id), keys);
    // At least one kill landed in the middle of a flush (else this test proved nothing).
    expect(killedDuring).toBeGreaterThan(0);
  }, 240_000);
});

/**
 * Licenses (GET /api/licenses, POST /api/licenses/activations, /.well-known/jwks.json). These routes
 * come with the licenses module: until it is in this build, these tests fail saying so.
 */
describe('licenses: activate, fetch, verify offline', () => {
  const notHere = (route: string) =>
    new Error(
      `${route} is not on this server (404 NOT_FOUND for the path): the licenses routes are not in this build yet, so the SDK's license calls cannot be checked end to end`,
    );

  async function requireRoutes(apiKey: string): Promise<void> {
    const probes = [
      ['GET', '/.well-known/jwks.json', {}],
      ['GET', '/api/licenses/activations', { 'X-API-Key': apiKey }],
    ] as const;
    for (const [method, p, headers] of probes) {
      const res = await call(port, method, p, headers);
      if (res.status === 404 && /"NOT_FOUND"/.test(res.body)) throw notHere(`${method} ${p}`);
    }
  }

  test('when an instance activates, fetches its license and the server goes away, then it verifies offline and keeps the last good license', async () => {
    await up();
    const customer = await newCustomer();
    await requireRoutes(customer.apiKey);
    const plan = `sdk-${randomBytes(4).toString('hex')}`;
    expect(
      (await admin('POST', '/api/plans', { code: plan, name: 'SDK', entitlements: { features: ['sso'], limits: { instances: 1, api_calls: 1000 } } })).status,
    ).toBe(201);
    expect((await admin('POST', `/api/customers/${customer.id}/subscriptions`, { plan })).status).toBe(201);

    const fingerprint = `inst-${randomBytes(6).toString('hex')}`;
    const licenseDir = path.join(work, 'license');
    // The defaults: the customer pinned from the API key, binding required since the fingerprint is known.
    const c = sdk(customer.apiKey, { license: { fingerprint, dir: licenseDir, trustedRoots: TRUSTED_ROOTS } });
    const activated = await c.activate({ name: 'e2e', hostname: 'e2e.local' });
    expect(activated.created).toBe(true);
    expect(activated.activation.fingerprint).toBe(fingerprint);
    expect((await c.activate()).created).toBe(false);

    // A raw token, verified by the SDK offline against the root-signed key set.
    const raw = await call(port, 'GET', `/api/licenses?fingerprint=${fingerprint}`, { 'X-API-Key': customer.apiKey });
    expect(raw.status).toBe(200);
    const verified = await c.verifyLicense(JSON.parse(raw.body).license);
    expect(verified).toMatchObject({ decision: 'full', claims: { sub: customer.id, instance: fingerprint, plan: { code: plan } } });

    const online = await c.getLicense();
    expect(online).toMatchObject({ offline: false, decision: 'full', features: ['sso'] });
    expect(fs.existsSync(path.join(licenseDir, 'license.json'))).toBe(true);

    // Another fingerprint is past limits.instances = 1.
    const other = sdk(customer.apiKey);
    const refused = await other.activate({ fingerprint: `inst-${randomBytes(6).toString('hex')}` }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(InstanceLimitReachedError);
    expect(refused).toBeInstanceOf(BillingApiError);
    expect(refused).toMatchObject({ status: 409, code: 'INSTANCE_LIMIT_REACHED' });
    // The one seat is held while the instance is live (its heartbeat window, 14 days) and until the license fetched above expires.
    const frees = (refused as InstanceLimitReachedError).seatFreesAt!.getTime();
    expect(frees).toBeGreaterThanOrEqual(online.expiresAt.getTime());
    expect(Math.abs(frees - (Date.now() + 14 * 86_400_000))).toBeLessThan(60_000);

    await down();
    const kept = await c.getLicense();
    expect(kept).toMatchObject({ offline: true, decision: 'full', claims: { jti: online.claims.jti } });
    // And after the instance restarts while the server is down: the license and the key set read back
    // from disk, both verified again against the root the software holds.
    const restarted = sdk(customer.apiKey, { license: { fingerprint, dir: licenseDir, trustedRoots: TRUSTED_ROOTS } });
    expect(await restarted.getLicense()).toMatchObject({ offline: true, claims: { jti: online.claims.jti } });
    // Without a trust anchor the same files give nothing.
    await expect(sdk(customer.apiKey, { license: { fingerprint, dir: licenseDir } }).getLicense()).rejects.toMatchObject({ code: 'NO_TRUST_ANCHOR' });
    await up();
  }, 120_000);
});
