/**
 * Issue 20's check, end to end against the real server processes: a receiver written with the
 * `standardwebhooks` package verifies everything it gets while two instances deliver, one is killed
 * with SIGKILL holding deliveries, PostgreSQL is cut for a few seconds under the other, and a
 * replacement instance starts; the events written for this test's customers are compared one for one
 * with the changes it made through the admin and customer APIs, and each was delivered, verified,
 * with the same webhook-id and body on every delivery of it.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client as PgClient } from 'pg';
import { Webhook } from 'standardwebhooks';
import { startReceiver, type Receiver } from '../helpers/delivery-fixtures';
import { call, freePort, type Running, startServer, waitFor } from '../helpers/server-process';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy';
import { testDatabaseUrl } from '../helpers/test-app';

const ADMIN = randomBytes(32).toString('hex');
// One key for every instance: each must open the endpoint's secret that another sealed.
const SECRETS_KEY = randomBytes(32).toString('base64');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-webhooks-e2e-'));
const running: Running[] = [];
let proxy: TcpProxy;
let db: PgClient;
let receiver: Receiver;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, check: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

interface Instance {
  name: string;
  port: number;
  r: Running;
}

/** An instance of the real server, on the test database through the proxy, delivering on a short schedule. */
async function launch(name: string): Promise<Instance> {
  const port = await freePort();
  const viaProxy = new URL(testDatabaseUrl());
  viaProxy.hostname = '127.0.0.1';
  viaProxy.port = String(proxy.port);
  const r = startServer({
    NODE_ENV: 'test',
    DATABASE_URL: viaProxy.toString(),
    PORT: String(port),
    DATA_DIR: path.join(work, name),
    ADMIN_API_TOKEN: ADMIN,
    WEBHOOK_SECRETS_KEY: SECRETS_KEY,
    WEBHOOK_RETRY_SCHEDULE: '1s,1s,2s,2s,5s',
    WEBHOOK_ALLOW_PRIVATE: 'true',
    WEBHOOK_ALLOW_HTTP: 'true',
    WEBHOOK_TIMEOUT: '5s',
    RATE_LIMIT_API: '100000/1m',
    RATE_LIMIT_USAGE: '100000/1m',
    RATE_LIMIT_USAGE_ADDRESS: '100000/1m',
  });
  running.push(r);
  return { name, port, r };
}
const listening = async (i: Instance) => waitFor(i.r, /listening/, 120_000);

type Json = Record<string, any>;
async function send(i: Instance, method: string, p: string, auth: { admin: true } | { key: string }, body?: unknown) {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if ('admin' in auth) headers.Authorization = `Bearer ${ADMIN}`;
  else headers['X-API-Key'] = auth.key;
  const res = await call(i.port, method, p, headers, body === undefined ? undefined : JSON.stringify(body));
  return { status: res.status, body: JSON.parse(res.body || 'null') as Json };
}
async function ok(i: Instance, method: string, p: string, auth: { admin: true } | { key: string }, status: number, body?: unknown): Promise<Json> {
  const res = await send(i, method, p, auth, body);
  if (res.status !== status) throw new Error(`${i.name} ${method} ${p}: expected ${status}, got ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}
const admin = { admin: true } as const;

/** The changes made, as the events they must write: (type, customer id). */
const expected: [string, string][] = [];
const expectEvent = (type: string, customerId: string) => expected.push([type, customerId]);

interface Customer {
  id: string;
  apiKey: string;
  /** Keys that still work (a rotation's grace keeps the old ones): each gets api_key.revoked when the customer is deleted. */
  activeKeys: Set<string>;
}
const customers: Customer[] = [];

/** The changes, each through the API of instance `i`, each recorded with the events it must write. */
const change = {
  async createCustomer(i: Instance): Promise<Customer> {
    const b = await ok(i, 'POST', '/api/customers', admin, 201, {
      email: `wh-e2e-${randomBytes(6).toString('hex')}@example.com`,
      company_name: 'Webhooks e2e',
    });
    const c = { id: b.customer.id as string, apiKey: b.api_key as string, activeKeys: new Set([b.key.id as string]) };
    customers.push(c);
    expectEvent('customer.created', c.id);
    expectEvent('api_key.created', c.id);
    return c;
  },
  async updateCustomer(i: Instance, c: Customer, companyName: string) {
    await ok(i, 'PATCH', `/api/customers/${c.id}`, admin, 200, { company_name: companyName });
    expectEvent('customer.updated', c.id);
  },
  async deleteCustomer(i: Instance, c: Customer) {
    await ok(i, 'DELETE', `/api/customers/${c.id}`, admin, 200);
    expectEvent('customer.deleted', c.id);
    c.activeKeys.forEach(() => expectEvent('api_key.revoked', c.id));
    c.activeKeys.clear();
  },
  async addKey(i: Instance, c: Customer): Promise<string> {
    const b = await ok(i, 'POST', `/api/customers/${c.id}/keys`, admin, 201, { keep_existing: true, name: 'site B' });
    c.activeKeys.add(b.key.id);
    expectEvent('api_key.created', c.id);
    return b.key.id as string;
  },
  async revokeKey(i: Instance, c: Customer, keyId: string) {
    await ok(i, 'DELETE', `/api/customers/${c.id}/keys/${keyId}`, admin, 200);
    c.activeKeys.delete(keyId);
    expectEvent('api_key.revoked', c.id);
  },
  async rotateKey(i: Instance, c: Customer) {
    const b = await ok(i, 'POST', `/api/customers/${c.id}/keys`, admin, 201, { grace_period_seconds: 0 });
    c.activeKeys = new Set([b.key.id as string]);
    c.apiKey = b.api_key;
    expectEvent('api_key.rotated', c.id);
  },
  /** Bulk rotation with an hour's grace: the old keys keep working beside the new ones. */
  async rotateMany(i: Instance, cs: Customer[]) {
    const b = await ok(i, 'POST', '/api/keys/rotate', admin, 200, { grace_period_seconds: 3600, customer_ids: cs.map((c) => c.id) });
    for (const c of cs) {
      const k = (b.keys as Json[]).find((x) => x.customer_id === c.id)!;
      c.activeKeys.add(k.key.id);
      c.apiKey = k.api_key;
      expectEvent('api_key.rotated', c.id);
    }
  },
  async subscribe(i: Instance, c: Customer, plan: string): Promise<string> {
    const b = await ok(i, 'POST', `/api/customers/${c.id}/subscriptions`, admin, 201, { plan });
    expectEvent('subscription.created', c.id);
    return b.subscription.id as string;
  },
  async changePlan(i: Instance, c: Customer, subscriptionId: string, plan: string) {
    await ok(i, 'PATCH', `/api/customers/${c.id}/subscriptions/${subscriptionId}`, admin, 200, { plan });
    expectEvent('subscription.updated', c.id);
  },
  async activate(i: Instance, c: Customer, fingerprint: string) {
    await ok(i, 'POST', '/api/licenses/activations', { key: c.apiKey }, 201, { fingerprint, name: 'e2e', hostname: 'e2e.example' });
    expectEvent('instance.activated', c.id);
    // Again: a heartbeat, no event.
    await ok(i, 'POST', '/api/licenses/activations', { key: c.apiKey }, 200, { fingerprint });
  },
  async activateRefused(i: Instance, c: Customer, fingerprint: string) {
    const res = await send(i, 'POST', '/api/licenses/activations', { key: c.apiKey }, { fingerprint });
    expect([res.status, res.body.error?.code]).toEqual([409, 'INSTANCE_LIMIT_REACHED']);
    expectEvent('instance.limit_reached', c.id);
  },
  async release(i: Instance, c: Customer, fingerprint: string, by: 'customer' | 'admin') {
    if (by === 'customer') await ok(i, 'DELETE', `/api/licenses/activations/${fingerprint}`, { key: c.apiKey }, 200);
    else await ok(i, 'DELETE', `/api/customers/${c.id}/activations/${fingerprint}`, admin, 200);
    expectEvent('instance.deactivated', c.id);
  },
};

async function createPlan(i: Instance, instances: number): Promise<string> {
  const code = `wh-e2e-${randomBytes(5).toString('hex')}`;
  await ok(i, 'POST', '/api/plans', admin, 201, { code, name: 'E2E', entitlements: { features: [], limits: { instances } } });
  return code;
}

const pidOf = (i: Instance) => i.r.child.pid!;

beforeAll(async () => {
  const real = new URL(testDatabaseUrl());
  proxy = await startTcpProxy(real.hostname, Number(real.port || 5432));
  db = new PgClient({ connectionString: testDatabaseUrl() });
  await db.connect();
  // Endpoints other files left behind would take these instances' slots (the files share one database, one at a time).
  await db.query(`update webhook_endpoints set disabled = true, disabled_reason = 'admin', disabled_at = now() where disabled = false`);
  receiver = await startReceiver();
});
afterAll(async () => {
  for (const r of running) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
  await Promise.all(running.map((r) => r.exited));
  await receiver?.close();
  await db?.end();
  await proxy?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

test('when two instances deliver while one is SIGKILLed holding deliveries, PostgreSQL is cut and a replacement starts, then every change made is one event, delivered and verified by a standardwebhooks receiver', async () => {
  const started = Date.now();
  // The receiver: every 5th new webhook-id is answered 500 the first time (a retry follows); while
  // `slow`, answers take 1.5 s, so attempts are in flight when an instance dies or PostgreSQL goes.
  let slow = false;
  let newIds = 0;
  const failedFirst = new Set<string>();
  receiver.behave(({ id, count }) => {
    if (count === 1 && ++newIds % 5 === 0) failedFirst.add(id);
    const status = count === 1 && failedFirst.has(id) ? 500 : 200;
    return { status, body: status === 200 ? 'ok' : 'try again', delayMs: slow ? 1500 : 0 };
  });

  const a = await launch('a');
  const b = await launch('b');
  await Promise.all([listening(a), listening(b)]);

  const created = await ok(a, 'POST', '/api/webhook-endpoints', admin, 201, { url: receiver.url, events: ['*'], description: 'webhooks e2e receiver' });
  const endpointId = created.webhook_endpoint.id as string;
  const secret = created.secret as string;
  expect(secret).toMatch(/^whsec_/);
  receiver.secrets.push(secret);

  /** Our customers' events whose delivery to our endpoint instance `i` holds now (claimed, its outcome not yet written). */
  const leasedBy = async (i: Instance) =>
    (
      await db.query<{ event_id: string }>(
        `select d.event_id from webhook_deliveries d join events e on e.id = d.event_id
          where d.endpoint_id = $1 and d.state = 'pending' and d.leased_by like $2 and e.customer_id = any($3::uuid[])`,
        [endpointId, `%:${pidOf(i)}:%`, customers.map((x) => x.id)],
      )
    ).rows.map((r) => r.event_id);

  // Both instances serve and deliver.
  const small = await createPlan(b, 2);
  const large = await createPlan(a, 5);
  const c1 = await change.createCustomer(a);
  const c2 = await change.createCustomer(b);
  const c3 = await change.createCustomer(a);
  const c4 = await change.createCustomer(b);
  await change.updateCustomer(a, c1, 'Renamed Ltd');
  const siteB = await change.addKey(b, c2);
  await change.revokeKey(a, c2, siteB);
  await change.rotateKey(b, c3);
  const sub4 = await change.subscribe(a, c4, small);
  await change.activate(b, c4, 'host-0001');
  await change.activate(a, c4, 'host-0002');
  await change.activateRefused(b, c4, 'host-0003');
  await change.release(a, c4, 'host-0001', 'customer');
  await until('the first deliveries to arrive', () => receiver.counts().size > 0, 30_000);

  // A burst with slow answers, until instance A holds deliveries to our endpoint; then SIGKILL it.
  slow = true;
  let heldByA: string[] = [];
  const burst: Customer[] = [];
  await until(
    'instance A to hold deliveries',
    async () => {
      burst.push(await change.createCustomer(b));
      heldByA = await leasedBy(a);
      return heldByA.length > 0;
    },
    30_000,
  );
  a.r.child.kill('SIGKILL');
  await a.r.exited;
  expect(a.r.child.signalCode).toBe('SIGKILL');

  await change.changePlan(b, c4, sub4, large);
  await change.rotateMany(b, [c1, burst[0]!]);

  // PostgreSQL away for a few seconds under B, with attempts in flight (answers still slow).
  await change.updateCustomer(b, c3, 'Before the cut');
  let heldByB: string[] = [];
  await until(
    'instance B to hold deliveries',
    async () => {
      heldByB = await leasedBy(b);
      return heldByB.length > 0;
    },
    15_000,
  );
  await proxy.cut();
  const cutAt = Date.now();
  const refused = await send(b, 'PATCH', `/api/customers/${c3.id}`, admin, { company_name: 'During the cut' });
  expect([refused.status, refused.body.error?.code]).toEqual([503, 'SERVICE_UNAVAILABLE']);
  // /ready answers from a check at most a second old.
  await until('B not ready', async () => (await call(b.port, 'GET', '/ready')).status === 503, 10_000);
  await sleep(Math.max(0, 3000 - (Date.now() - cutAt)));
  await proxy.restore();
  slow = false;

  // A replacement for A; changes go on through B while it starts, then through it.
  const c = await launch('c');
  await until('B to reach PostgreSQL again', async () => (await call(b.port, 'GET', '/ready')).status === 200, 30_000);
  const c5 = await change.createCustomer(b);
  await change.addKey(b, c5);
  await change.deleteCustomer(b, c5);
  await change.release(b, c4, 'host-0002', 'admin');
  await change.deleteCustomer(b, c1); // its old key, still in its grace, and its new one: two api_key.revoked
  await listening(c);
  const c6 = await change.createCustomer(c);
  const sub6 = await change.subscribe(c, c6, large);
  await change.activate(c, c6, 'host-0006');
  await change.changePlan(c, c6, sub6, small);
  await change.updateCustomer(c, burst[1] ?? c2, 'After the restart');
  await change.rotateKey(c, c2);
  await change.deleteCustomer(c, c3);

  const ids = customers.map((x) => x.id);
  const ourEvents = async () =>
    (
      await db.query<{ id: string; type: string; customer_id: string; state: string | null; attempts: number | null }>(
        `select e.id, e.type, e.customer_id, d.state, d.attempts
           from events e left join webhook_deliveries d on d.event_id = e.id and d.endpoint_id = $2
          where e.customer_id = any($1::uuid[]) order by e.id`,
        [ids, endpointId],
      )
    ).rows;
  // Bounded: what A held comes due again when its lease ends (at most 30 s after it died).
  await until(
    'every event of our customers to be delivered and received',
    async () => {
      const rows = await ourEvents();
      const got = receiver.counts();
      return rows.length === expected.length && rows.every((r) => r.state === 'delivered' && got.has(r.id));
    },
    60_000,
  ).catch(async (err: Error) => {
    const rows = await ourEvents();
    throw new Error(`${err.message}\n${JSON.stringify({ expected: expected.length, rows: rows.filter((r) => r.state !== 'delivered') }, null, 1)}`);
  });

  // One for one: the events of our customers are exactly the changes made (none for the change refused during the cut).
  const rows = await ourEvents();
  const key = ([type, customerId]: [string, string]) => `${customerId} ${type}`;
  expect(rows.map((r) => key([r.type, r.customer_id])).sort()).toEqual(expected.map(key).sort());
  // Each went to our endpoint, once, and was delivered.
  expect(rows.filter((r) => r.state !== 'delivered')).toEqual([]);
  const { rows: deliveries } = await db.query<{ n: string }>(
    `select count(*) as n from webhook_deliveries d join events e on e.id = d.event_id where d.endpoint_id = $1 and e.customer_id = any($2::uuid[])`,
    [endpointId, ids],
  );
  expect(Number(deliveries[0]!.n)).toBe(rows.length);

  // Nothing the receiver got failed verification, whoever sent it.
  expect(receiver.received.filter((x) => x.verifyError !== null).map((x) => [x.id, x.verifyError])).toEqual([]);
  // Every delivery of one event: that webhook-id, the same body, the event itself.
  for (const row of rows) {
    const got = receiver.received.filter((x) => x.id === row.id);
    expect(got.length).toBeGreaterThan(0);
    expect(new Set(got.map((x) => x.body)).size).toBe(1);
    const body = JSON.parse(got[0]!.body) as Json;
    expect([body.id, body.type, body.customer_id]).toEqual([row.id, row.type, row.customer_id]);
  }
  // The faults happened to these events: retries after a 500, and what A held when it died delivered by another.
  const ours = new Set(rows.map((r) => r.id));
  const retried = [...failedFirst].filter((id) => ours.has(id));
  expect(retried.length).toBeGreaterThan(0);
  // Each was sent again after its 500 (the receiver saw both). The database counts both attempts unless
  // the first one's outcome died with the killed instance (its lease ran out; at least once).
  const attempts = (id: string) => rows.find((r) => r.id === id)!.attempts!;
  expect(retried.filter((id) => receiver.counts().get(id)! < 2).map((id) => [id, receiver.counts().get(id), attempts(id)])).toEqual([]);
  const recorded = retried.filter((id) => attempts(id) >= 2);
  expect(recorded.length).toBeGreaterThan(0);
  for (const id of [...heldByA, ...heldByB]) expect(rows.find((r) => r.id === id)?.state).toBe('delivered');

  // A tampered copy of a received body fails verification; the original, with the same headers, passes (control).
  const sample = receiver.received.find((x) => x.id === rows[0]!.id)!;
  const headers = { 'webhook-id': sample.id, 'webhook-timestamp': sample.timestamp, 'webhook-signature': sample.signature };
  const wh = new Webhook(secret);
  expect(() => wh.verify(sample.body, headers)).not.toThrow();
  const other = ids.find((id) => id !== rows[0]!.customer_id)!;
  const tampered = sample.body.replace(rows[0]!.customer_id, other);
  expect(tampered).not.toBe(sample.body);
  expect(() => wh.verify(tampered, headers)).toThrow(/signature/i);

  process.stdout.write(
    `webhooks e2e: ${rows.length} events, ${receiver.received.length} requests, ${retried.length} retried after a 500 ` +
      `(${retried.length - recorded.length} with the 500's outcome lost with the killed instance), ` +
      `${heldByA.length} held by the killed instance, ${heldByB.length} in flight at the cut, ${Date.now() - started} ms\n`,
  );
}, 240_000);
