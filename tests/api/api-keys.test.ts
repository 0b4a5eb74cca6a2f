import request from 'supertest';
import { expectError } from '../helpers/envelope';
import { createCustomer, issueKey, revokeKey } from '../helpers/factories';
import { createTestApp, TestApp } from '../helpers/test-app';

let t: TestApp;
let admin: Record<string, string>;
/** The app's clock runs this far ahead of the real one, to pass a grace period without sleeping. */
let skewMs = 0;
beforeAll(async () => {
  t = await createTestApp({ MAX_ACTIVE_KEYS_PER_CUSTOMER: '3', API_KEY_CACHE_TTL_SECONDS: '3600' }, { now: () => Date.now() + skewMs });
  admin = { Authorization: `Bearer ${t.adminToken}` };
});
afterAll(() => t.close());

const me = (key: string) => request(t.app).get('/api/me').set('X-API-Key', key);

describe('issuing and rotating keys', () => {
  test('when a key is issued without a grace period, then the older key is refused at once, even though it was cached', async () => {
    const c = await createCustomer(t);
    await me(c.apiKey).expect(200);
    const issued = await issueKey(t, c.id);
    expect(issued.body.ended_key_ids).toEqual([c.keyId]);
    expectError(await me(c.apiKey), 401, 'UNAUTHORIZED');
    expect((await me(issued.apiKey)).body.key.id).toBe(issued.keyId);
    expect((await t.db('api_keys').where({ id: c.keyId }).first())!.revoked_at).not.toBeNull();
  });

  test('when a key is issued with a grace period, then both keys work until the grace ends, then only the new one', async () => {
    const c = await createCustomer(t);
    await me(c.apiKey).expect(200);
    const issued = await issueKey(t, c.id, { grace_period_seconds: 600 });
    const old = (await t.db('api_keys').where({ id: c.keyId }).first())!;
    expect(old.revoked_at).toBeNull();
    expect(old.expires_at!.getTime() - Date.now()).toBeGreaterThan(590_000);
    await me(c.apiKey).expect(200); // verified again (the rotation evicted it), cached with its expiry
    await me(issued.apiKey).expect(200);
    skewMs = 601_000;
    try {
      expectError(await me(c.apiKey), 401, 'UNAUTHORIZED');
      await me(issued.apiKey).expect(200);
    } finally {
      skewMs = 0;
    }
  });

  test('when keep_existing is set, then a key is added beside the others, up to the limit', async () => {
    const c = await createCustomer(t);
    const second = await issueKey(t, c.id, { keep_existing: true, name: 'second site' });
    const third = await issueKey(t, c.id, { keep_existing: true });
    for (const k of [c.apiKey, second.apiKey, third.apiKey]) await me(k).expect(200);
    const res = await request(t.app).post(`/api/customers/${c.id}/keys`).set(admin).send({ keep_existing: true });
    expectError(res, 409, 'TOO_MANY_KEYS');
    expect(await t.db('api_keys').where({ customer_id: c.id })).toHaveLength(3);
    // Rotation without grace is always possible: it ends the others.
    const rotated = await issueKey(t, c.id);
    expect(rotated.body.ended_key_ids.sort()).toEqual([c.keyId, second.keyId, third.keyId].sort());
  });

  test('when twenty keys are added at once, then the limit still holds', async () => {
    const c = await createCustomer(t);
    const results = await Promise.all(
      Array.from({ length: 20 }, () => request(t.app).post(`/api/customers/${c.id}/keys`).set(admin).send({ keep_existing: true })),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(2);
    expect(await t.db('api_keys').where({ customer_id: c.id }).whereNull('revoked_at')).toHaveLength(3);
  });

  test.each([
    [{ grace_period_seconds: -1 }],
    [{ grace_period_seconds: 1.5 }],
    [{ grace_period_seconds: '60' }],
    [{ grace_period_seconds: 31 * 24 * 3600 }],
    [{ keep_existing: 'yes' }],
    [{ keep_existing: true, grace_period_seconds: 60 }],
    [{ name: '' }],
    [{ secret: 'mine' }],
  ])('when the body is %j, then 422 and no key is written', async (body) => {
    const c = await createCustomer(t);
    expectError(await request(t.app).post(`/api/customers/${c.id}/keys`).set(admin).send(body), 422, 'VALIDATION_FAILED');
    expect(await t.db('api_keys').where({ customer_id: c.id })).toHaveLength(1);
  });

  test('when the customer does not exist, then 404', async () => {
    expectError(await request(t.app).post('/api/customers/01900000-0000-7000-8000-000000000000/keys').set(admin).send({}), 404, 'NOT_FOUND');
  });
});

describe('listing keys', () => {
  test('when keys are listed, then each shows id, start, dates and status, never a hash or secret', async () => {
    const c = await createCustomer(t);
    const second = await issueKey(t, c.id, { keep_existing: true, name: 'backup' });
    await revokeKey(t, c.id, c.keyId);
    const res = await request(t.app).get(`/api/customers/${c.id}/keys`).set(admin);
    expect(res.status).toBe(200);
    expect(res.body.data).toHaveLength(2);
    const byId = Object.fromEntries(res.body.data.map((k: { id: string }) => [k.id, k]));
    expect(byId[c.keyId]).toMatchObject({ status: 'revoked', name: null });
    expect(byId[second.keyId]).toMatchObject({ status: 'active', name: 'backup', revoked_at: null });
    for (const k of res.body.data) {
      expect(Object.keys(k).sort()).toEqual(['created_at', 'customer_id', 'expires_at', 'id', 'last_used_at', 'name', 'revoked_at', 'start', 'status']);
    }
    const text = JSON.stringify(res.body);
    expect(text).not.toContain(second.apiKey);
    expect(text).not.toContain(second.apiKey.slice(-20));
    expect(text).not.toMatch(/\$2[aby]\$/);
  });

  test('when keys are used, then last_used_at is written in one batch, not per request', async () => {
    const c = await createCustomer(t);
    for (let i = 0; i < 5; i++) await me(c.apiKey).expect(200);
    expect((await t.db('api_keys').where({ id: c.keyId }).first())!.last_used_at).toBeNull();
    await t.c.lastUsed.flush();
    const stamped = (await t.db('api_keys').where({ id: c.keyId }).first())!.last_used_at!;
    expect(stamped).not.toBeNull();
    expect(Date.now() - stamped.getTime()).toBeLessThan(10_000);
    const listed = await request(t.app).get(`/api/customers/${c.id}/keys`).set(admin);
    expect(listed.body.data[0].last_used_at).toBe(stamped.toISOString());
  });
});

describe('revoking keys', () => {
  test('when a cached key is revoked, then the next request with it is refused', async () => {
    const c = await createCustomer(t);
    const spare = await issueKey(t, c.id, { keep_existing: true });
    await me(c.apiKey).expect(200);
    await me(c.apiKey).expect(200);
    const res = await request(t.app).delete(`/api/customers/${c.id}/keys/${c.keyId}`).set(admin);
    expect(res.status).toBe(200);
    expect(res.body.key).toMatchObject({ id: c.keyId, status: 'revoked' });
    expectError(await me(c.apiKey), 401, 'UNAUTHORIZED');
    await me(spare.apiKey).expect(200);
  });

  test("when a key is revoked through another customer's path, then 404 and the key still works", async () => {
    const a = await createCustomer(t);
    const b = await createCustomer(t);
    expectError(await request(t.app).delete(`/api/customers/${b.id}/keys/${a.keyId}`).set(admin), 404, 'NOT_FOUND');
    await me(a.apiKey).expect(200);
  });

  test('when a key is revoked twice, then the second call succeeds and keeps the first revocation time', async () => {
    const c = await createCustomer(t);
    const first = await request(t.app).delete(`/api/customers/${c.id}/keys/${c.keyId}`).set(admin);
    const second = await request(t.app).delete(`/api/customers/${c.id}/keys/${c.keyId}`).set(admin);
    expect(second.status).toBe(200);
    expect(second.body.key.revoked_at).toBe(first.body.key.revoked_at);
  });
});

describe('verification cost', () => {
  test('when a verified key is used again, then bcrypt does not run again', async () => {
    const c = await createCustomer(t);
    const before = t.bcryptCalls();
    await me(c.apiKey).expect(200);
    expect(t.bcryptCalls()).toBe(before + 1);
    for (let i = 0; i < 20; i++) await me(c.apiKey).expect(200);
    expect(t.bcryptCalls()).toBe(before + 1);
  });

  test('when fifty requests bring a new key at once, then bcrypt runs once', async () => {
    const c = await createCustomer(t);
    const before = t.bcryptCalls();
    const results = await Promise.all(Array.from({ length: 50 }, () => me(c.apiKey)));
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(t.bcryptCalls()).toBe(before + 1);
  });

  test('when a malformed key is sent, then neither bcrypt nor the database is asked', async () => {
    const before = t.bcryptCalls();
    const keyLookups: string[] = [];
    const onQuery = (q: { sql: string }) => /api_keys/.test(q.sql) && keyLookups.push(q.sql);
    t.db.on('query', onQuery);
    try {
      for (const k of [
        'x',
        'cust_',
        `cust_${'0'.repeat(36)}_${'A'.repeat(43)}`,
        `cust_${'0'.repeat(36)}_${'A'.repeat(43)}`.replace(/^cust_0{8}/, 'cust_0000000-'),
        'A'.repeat(10_000),
      ]) {
        expectError(await me(k), 401, 'UNAUTHORIZED');
      }
    } finally {
      t.db.off('query', onQuery);
    }
    expect(t.bcryptCalls()).toBe(before);
    expect(keyLookups).toEqual([]);
  });

  test('when an unknown customer or a wrong secret is sent, then each costs one bcrypt (similar time), and a repeat costs none', async () => {
    const c = await createCustomer(t);
    // The real key's start with another secret: the hash is found and compared, and differs.
    const wrong = `${c.apiKey.slice(0, -1)}${c.apiKey.endsWith('A') ? 'B' : 'A'}`;
    const unknown = `cust_01900000-0000-7000-8000-000000000000_${'B'.repeat(43)}`;
    const before = t.bcryptCalls();
    expectError(await me(wrong), 401, 'UNAUTHORIZED');
    expectError(await me(unknown), 401, 'UNAUTHORIZED');
    expect(t.bcryptCalls()).toBe(before + 2);
    expectError(await me(wrong), 401, 'UNAUTHORIZED');
    expectError(await me(unknown), 401, 'UNAUTHORIZED');
    expect(t.bcryptCalls()).toBe(before + 2);
  });
});

describe('cache re-checks', () => {
  test('when the TTL has passed, then a cached key is re-checked by id without bcrypt, and a missed revocation is honoured', async () => {
    const kept = await createCustomer(t);
    const missed = await createCustomer(t);
    await me(kept.apiKey).expect(200);
    await me(missed.apiKey).expect(200);
    const bcryptBefore = t.bcryptCalls();
    // A revocation this instance never hears of (as if its LISTEN connection were down).
    await t.db('api_keys').where({ id: missed.keyId }).update({ revoked_at: new Date() });
    await me(missed.apiKey).expect(200); // within the TTL: the documented bound on staleness

    skewMs = 3601_000;
    try {
      const lookups: string[] = [];
      const onQuery = (q: { sql: string }) => /from "api_keys"/.test(q.sql) && lookups.push(q.sql);
      t.db.on('query', onQuery);
      await me(kept.apiKey).expect(200);
      await me(kept.apiKey).expect(200); // re-checked once, then cached again
      expectError(await me(missed.apiKey), 401, 'UNAUTHORIZED');
      t.db.off('query', onQuery);
      expect(lookups).toHaveLength(2);
      expect(t.bcryptCalls()).toBe(bcryptBefore);
    } finally {
      skewMs = 0;
    }
  });
});

describe('several instances', () => {
  test('when a key is revoked on one instance, then another instance that cached it refuses it promptly', async () => {
    const url = process.env.TEST_DATABASE_URL!;
    const one = await createTestApp();
    const two = await createTestApp();
    try {
      await one.c.start(url);
      await two.c.start(url);
      const c = await createCustomer(one);
      await request(two.app).get('/api/me').set('X-API-Key', c.apiKey).expect(200);
      expect(two.c.cache.size).toBeGreaterThan(0);
      const bcryptBefore = two.bcryptCalls();
      await request(two.app).get('/api/me').set('X-API-Key', c.apiKey).expect(200);
      expect(two.bcryptCalls()).toBe(bcryptBefore); // served from its cache

      await revokeKey(one, c.id, c.keyId);
      const deadline = Date.now() + 3000;
      let status = 200;
      while (Date.now() < deadline && status === 200) {
        status = (await request(two.app).get('/api/me').set('X-API-Key', c.apiKey)).status;
        if (status === 200) await new Promise((r) => setTimeout(r, 20));
      }
      expect(status).toBe(401);
    } finally {
      await one.close();
      await two.close();
    }
  });
});
