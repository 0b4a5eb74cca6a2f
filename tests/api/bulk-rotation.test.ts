/**
 * POST /api/keys/rotate: every active customer's key (or the named customers'), in one request.
 * These tests act on every customer, so they run on a database of their own.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { uuidv7 } from '../../src/lib/ids';
import { expectError } from '../helpers/envelope';
import { createCustomer, deleteCustomer, issueKey, type CreatedCustomer } from '../helpers/factories';
import { createIsolatedTestApp } from '../helpers/fresh-database';
import { createTestApp, type TestApp } from '../helpers/test-app';

let iso: Awaited<ReturnType<typeof createIsolatedTestApp>>;
let t: TestApp;
let skewMs = 0;
beforeAll(async () => {
  iso = await createIsolatedTestApp(
    'bulk_rotation',
    { MAX_ACTIVE_KEYS_PER_CUSTOMER: '3', API_KEY_CACHE_TTL_SECONDS: '3600' },
    { now: () => Date.now() + skewMs },
  );
  t = iso.t;
});
afterAll(() => iso.close());

const admin = () => ({ Authorization: `Bearer ${t.adminToken}` });
const rotate = (body: unknown, app = t.app, token = t.adminToken) =>
  request(app)
    .post('/api/keys/rotate')
    .set('Authorization', `Bearer ${token}`)
    .send(body as object);
const me = (key: string) => request(t.app).get('/api/me').set('X-API-Key', key);

/** Soft-deletes every customer left by earlier tests, so "every active customer" is what a test made. */
async function onlyThese(n: number): Promise<CreatedCustomer[]> {
  await t.db('customers').where({ status: 'active' }).update({ status: 'deleted', deleted_at: t.db.fn.now() });
  const made: CreatedCustomer[] = [];
  for (let i = 0; i < n; i++) made.push(await createCustomer(t));
  return made;
}

describe('rotating every active customer', () => {
  test('when grace is 0, then every active customer gets a new key, the old ones are refused at once (even cached), and deleted customers are left alone', async () => {
    const customers = await onlyThese(3);
    const gone = await createCustomer(t);
    await deleteCustomer(t, gone.id);
    for (const c of customers) await me(c.apiKey).expect(200); // cached

    const res = await rotate({ grace_period_seconds: 0 });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ rotated: 3, grace_period_seconds: 0, skipped: [], next_cursor: null });
    const byCustomer = new Map<string, { api_key: string; key: { id: string }; ended_key_ids: string[] }>(
      res.body.keys.map((k: { customer_id: string }) => [k.customer_id, k]),
    );
    expect([...byCustomer.keys()].sort()).toEqual(customers.map((c) => c.id).sort());
    for (const c of customers) {
      const k = byCustomer.get(c.id)!;
      expect(k.ended_key_ids).toEqual([c.keyId]);
      expectError(await me(c.apiKey), 401, 'UNAUTHORIZED');
      expect((await me(k.api_key)).body.key.id).toBe(k.key.id);
      expect((await t.db('api_keys').where({ id: c.keyId }).first())!.revoked_at).not.toBeNull();
    }
    expect(await t.db('api_keys').where({ customer_id: gone.id })).toHaveLength(1);
  });

  test('when a grace period is given, then old keys keep working until it ends, then only the new ones do', async () => {
    const [c] = await onlyThese(1);
    await me(c!.apiKey).expect(200);
    const res = await rotate({ grace_period_seconds: 600 });
    expect(res.body.rotated).toBe(1);
    const fresh = res.body.keys[0].api_key as string;
    const old = (await t.db('api_keys').where({ id: c!.keyId }).first())!;
    expect(old.revoked_at).toBeNull();
    expect(old.expires_at!.getTime() - Date.now()).toBeGreaterThan(590_000);
    await me(c!.apiKey).expect(200);
    await me(fresh).expect(200);
    skewMs = 601_000;
    try {
      expectError(await me(c!.apiKey), 401, 'UNAUTHORIZED');
      await me(fresh).expect(200);
    } finally {
      skewMs = 0;
    }
  });

  test('when there are more customers than the limit, then one page is rotated and next_cursor continues where it stopped', async () => {
    const customers = await onlyThese(3);
    const first = await rotate({ grace_period_seconds: 0, limit: 2 });
    expect(first.body.rotated).toBe(2);
    expect(first.body.next_cursor).toEqual(expect.any(String));
    const second = await rotate({ grace_period_seconds: 0, limit: 2, cursor: first.body.next_cursor });
    expect(second.body).toMatchObject({ rotated: 1, next_cursor: null });
    const rotated = [...first.body.keys, ...second.body.keys].map((k: { customer_id: string }) => k.customer_id).sort();
    expect(rotated).toEqual(customers.map((c) => c.id).sort());
  });

  test('when more than 1000 customers are active, then one request rotates 1000 of them and the cursor the rest', async () => {
    await onlyThese(0);
    const ids = Array.from({ length: 1003 }, () => uuidv7());
    await t.db('customers').insert(ids.map((id) => ({ id, email: `cap-${id}@example.com`, company_name: 'Cap' })));
    const first = await rotate({ grace_period_seconds: 0 });
    expect(first.status).toBe(200);
    expect(first.body.rotated).toBe(1000);
    const second = await rotate({ grace_period_seconds: 0, cursor: first.body.next_cursor });
    expect(second.body).toMatchObject({ rotated: 3, next_cursor: null });
    expect(Number((await t.db('api_keys').whereIn('customer_id', ids).count({ n: '*' }))[0]!.n)).toBe(1003);
  }, 60_000);

  test('when a customer is at the key limit and a grace period would keep its keys, then it is reported as skipped, and grace 0 still rotates it', async () => {
    const [full, other] = await onlyThese(2);
    await issueKey(t, full!.id, { keep_existing: true });
    await issueKey(t, full!.id, { keep_existing: true });
    const res = await rotate({ grace_period_seconds: 60 });
    expect(res.body.rotated).toBe(1);
    expect(res.body.keys[0].customer_id).toBe(other!.id);
    expect(res.body.skipped).toEqual([{ customer_id: full!.id, reason: 'too_many_keys' }]);
    expect(await t.db('api_keys').where({ customer_id: full!.id })).toHaveLength(3);
    const now = await rotate({ grace_period_seconds: 0, customer_ids: [full!.id] });
    expect(now.body.rotated).toBe(1);
    expect(now.body.keys[0].ended_key_ids).toHaveLength(3);
  });
});

describe('rotating named customers', () => {
  test('when customer_ids name active, deleted and unknown customers, then only the active ones are rotated and the others reported', async () => {
    const [a, untouched, gone] = await onlyThese(3);
    await deleteCustomer(t, gone!.id);
    const unknown = uuidv7();
    const res = await rotate({ grace_period_seconds: 0, customer_ids: [a!.id, gone!.id, unknown] });
    expect(res.status).toBe(200);
    expect(res.body.rotated).toBe(1);
    expect(res.body.keys[0].customer_id).toBe(a!.id);
    expect(res.body.skipped).toEqual([
      { customer_id: gone!.id, reason: 'deleted' },
      { customer_id: unknown, reason: 'not_found' },
    ]);
    await me(untouched!.apiKey).expect(200);
    expect(await t.db('api_keys').where({ customer_id: untouched!.id })).toHaveLength(1);
  });

  test('when the rotation is done, then each customer has an audit row and the request a summary row, none holding a secret, and no key is logged', async () => {
    const [a, b] = await onlyThese(2);
    const res = await rotate({ grace_period_seconds: 0, customer_ids: [a!.id, b!.id] });
    const requestId = res.headers['x-request-id'];
    const rows = await t.db('audit_log').where({ request_id: requestId }).orderBy('id');
    expect(rows.map((r) => r.action)).toEqual(['api_key.issue', 'api_key.issue', 'api_key.bulk_rotate']);
    for (const k of res.body.keys) {
      const row = rows.find((r) => r.target_id === k.key.id)!;
      expect(row).toMatchObject({ actor: 'admin', outcome: 'success', target_type: 'api_key' });
      expect(row.details).toMatchObject({ customer_id: k.customer_id, mode: 'rotate', bulk: true, grace_period_seconds: 0, ended_key_ids: k.ended_key_ids });
    }
    expect(rows[2]!.details).toMatchObject({ rotated: 2, grace_period_seconds: 0, selection: 'customer_ids', skipped: [] });
    // The customer's audit trail shows the rotation, as for a single one.
    const trail = await request(t.app).get('/api/audit').query({ customer_id: a!.id, action: 'api_key.issue' }).set(admin());
    expect(trail.body.data.some((r: { request_id: string }) => r.request_id === requestId)).toBe(true);

    const everything = JSON.stringify(await t.db('audit_log')) + JSON.stringify(await t.db('api_keys')) + t.logs.join('');
    for (const k of res.body.keys as { api_key: string }[]) {
      expect(everything.includes(k.api_key)).toBe(false);
      expect(everything.includes(k.api_key.slice(-35))).toBe(false);
    }
  });
});

describe('refusals', () => {
  test.each([
    ['no grace period', {}],
    ['a negative grace period', { grace_period_seconds: -1 }],
    ['a grace period as a string', { grace_period_seconds: '60' }],
    ['a grace period over 30 days', { grace_period_seconds: 31 * 24 * 3600 }],
    ['an empty customer list', { grace_period_seconds: 0, customer_ids: [] }],
    ['an id that is not ours', { grace_period_seconds: 0, customer_ids: ['not-a-uuid'] }],
    ['an id twice', { grace_period_seconds: 0, customer_ids: ['01900000-0000-7000-8000-000000000000', '01900000-0000-7000-8000-000000000000'] }],
    ['1001 ids', { grace_period_seconds: 0, customer_ids: Array.from({ length: 1001 }, () => uuidv7()) }],
    ['customer_ids with a limit', { grace_period_seconds: 0, customer_ids: ['01900000-0000-7000-8000-000000000000'], limit: 5 }],
    ['a limit of 0', { grace_period_seconds: 0, limit: 0 }],
    ['a limit over 1000', { grace_period_seconds: 0, limit: 1001 }],
    ['a cursor not from this walk', { grace_period_seconds: 0, cursor: 'not a cursor' }],
    ['an unknown field', { grace_period_seconds: 0, keep_existing: true }],
    ['an array', []],
  ])('when the body has %s, then 422 and nothing is written', async (_label, body) => {
    const [c] = await onlyThese(1);
    const keysBefore = await t.db('api_keys').count({ n: '*' });
    const res = await rotate(body);
    expectError(res, 422, 'VALIDATION_FAILED');
    expect(await t.db('api_keys').count({ n: '*' })).toEqual(keysBefore);
    expect(await t.db('audit_log').where({ request_id: res.headers['x-request-id'], outcome: 'success' })).toHaveLength(0);
    await me(c!.apiKey).expect(200);
  });

  test('when the admin limit allows one request an hour, then one request still rotates every customer', async () => {
    const customers = await onlyThese(12);
    const limited = await createTestApp({ RATE_LIMIT_ADMIN: '1/1h' }, { databaseUrl: iso.url });
    try {
      const res = await rotate({ grace_period_seconds: 0 }, limited.app, limited.adminToken);
      expect(res.body.rotated).toBe(customers.length);
      expectError(await rotate({ grace_period_seconds: 0 }, limited.app, limited.adminToken), 429, 'RATE_LIMITED');
    } finally {
      await limited.close();
    }
  });

  test('when the client hangs up while the keys are being made, then nothing is written', async () => {
    const customers = await onlyThese(12);
    const slow = await createTestApp({ BCRYPT_COST: '11' }, { databaseUrl: iso.url });
    const server = slow.app.listen(0, '127.0.0.1');
    try {
      await new Promise((r) => server.once('listening', r));
      const body = JSON.stringify({ grace_period_seconds: 0 });
      const req = http.request({
        host: '127.0.0.1',
        port: (server.address() as AddressInfo).port,
        path: '/api/keys/rotate',
        method: 'POST',
        headers: { Authorization: `Bearer ${slow.adminToken}`, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
      });
      req.on('error', () => undefined);
      req.end(body);
      await new Promise((r) => setTimeout(r, 300));
      req.destroy();
      // The refused attempt is audited with its code once the service gave up.
      const deadline = Date.now() + 20_000;
      let failed: { details: Record<string, unknown> } | undefined;
      while (!failed && Date.now() < deadline) {
        failed = await slow
          .db('audit_log')
          .where({ action: 'api_key.bulk_rotate', outcome: 'failure', actor_id: slow.c.adminTokens.match(slow.adminToken) })
          .first();
        if (!failed) await new Promise((r) => setTimeout(r, 100));
      }
      expect(failed?.details.code).toBe('BAD_REQUEST');
      for (const c of customers) expect(await slow.db('api_keys').where({ customer_id: c.id })).toHaveLength(1);
      for (const c of customers) await me(c.apiKey).expect(200);
    } finally {
      server.close();
      await slow.close();
    }
  }, 60_000);
});

describe('several instances', () => {
  test('when keys are rotated on one instance, then another that cached the old keys refuses them promptly', async () => {
    const [a, b] = await onlyThese(2);
    const other = await createTestApp({ API_KEY_CACHE_TTL_SECONDS: '3600' }, { databaseUrl: iso.url });
    try {
      await other.c.start(iso.url);
      for (const c of [a!, b!]) await request(other.app).get('/api/me').set('X-API-Key', c.apiKey).expect(200);
      expect((await rotate({ grace_period_seconds: 0 })).body.rotated).toBe(2);
      for (const c of [a!, b!]) {
        const deadline = Date.now() + 3000;
        let status = 200;
        while (Date.now() < deadline && status === 200) {
          status = (await request(other.app).get('/api/me').set('X-API-Key', c.apiKey)).status;
          if (status === 200) await new Promise((r) => setTimeout(r, 20));
        }
        expect(status).toBe(401);
      }
    } finally {
      await other.close();
    }
  });
});
