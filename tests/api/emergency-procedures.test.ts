/**
 * The emergency procedures of docs/SECURITY-SETUP.md, step by step, through the app. The steps that
 * signal the process (SIGHUP) run against the real server in tests/process/emergency-procedures.test.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { reloadSecrets } from '../../src/secrets-reload';
import { expectError } from '../helpers/envelope';
import { createCustomer } from '../helpers/factories';
import { createIsolatedTestApp } from '../helpers/fresh-database';
import { createTestApp, newAdminToken, type TestApp } from '../helpers/test-app';

describe("A customer's API key leaked", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ RATE_LIMIT_ADMIN: '10/1h' });
  });
  afterAll(() => t.close());
  const admin = () => ({ Authorization: `Bearer ${t.adminToken}` });

  test('when the procedure is followed with a grace period, then the leaked key works until it is revoked, the new key works, and the audit trail shows it all', async () => {
    const c = await createCustomer(t);
    await request(t.app).post('/api/usage').set('X-API-Key', c.apiKey).send({ metric: 'api_calls', quantity: 1, idempotency_key: 'attacker-1' }).expect(201);
    // 1. Find the key by its start.
    const listed = await request(t.app).get(`/api/customers/${c.id}/keys`).set(admin()).expect(200);
    const leaked = listed.body.data.find((k: { start: string }) => c.apiKey.startsWith(k.start));
    expect(leaked.id).toBe(c.keyId);
    // 2. A new key, the leaked one kept for an hour, then revoked explicitly.
    const issued = await request(t.app).post(`/api/customers/${c.id}/keys`).set(admin()).send({ grace_period_seconds: 3600 }).expect(201);
    await request(t.app).get('/api/me').set('X-API-Key', c.apiKey).expect(200);
    await request(t.app).delete(`/api/customers/${c.id}/keys/${leaked.id}`).set(admin()).expect(200);
    expectError(await request(t.app).get('/api/me').set('X-API-Key', c.apiKey), 401, 'UNAUTHORIZED');
    await request(t.app).get('/api/me').set('X-API-Key', issued.body.api_key).expect(200);
    // 3. Review.
    const trail = await request(t.app).get('/api/audit').query({ customer_id: c.id, limit: 200 }).set(admin()).expect(200);
    const actions = trail.body.data.map((e: { action: string }) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['api_key.revoke', 'api_key.issue', 'customer.create']));
    const usage = await request(t.app).get(`/api/customers/${c.id}/usage`).query({ group_by: 'day' }).set(admin()).expect(200);
    expect(usage.body.totals[0].events).toBe(1);
    expect(t.limited).toEqual([]);
  });

  test('when the key is rotated without a grace period, then the leaked key is refused at once', async () => {
    const c = await createCustomer(t);
    await request(t.app).get('/api/me').set('X-API-Key', c.apiKey).expect(200);
    await request(t.app).post(`/api/customers/${c.id}/keys`).set(admin()).send({}).expect(201);
    expectError(await request(t.app).get('/api/me').set('X-API-Key', c.apiKey), 401, 'UNAUTHORIZED');
  });
});

describe('A suspected breach', () => {
  let iso: Awaited<ReturnType<typeof createIsolatedTestApp>>;
  let skewMs = 0;
  beforeAll(async () => {
    // The default admin limit: 10 requests an hour, which stopped the old one-request-per-customer loop.
    iso = await createIsolatedTestApp('breach', { RATE_LIMIT_ADMIN: '10/1h' }, { now: () => Date.now() + skewMs });
  });
  afterAll(() => iso.close());

  test('when every customer key is rotated as step 3 says, then 25 customers take one admin request, old keys work for the day and then stop', async () => {
    const setup = await createTestApp({}, { databaseUrl: iso.url }); // customers made outside the limited app
    const customers = [];
    try {
      for (let i = 0; i < 25; i++) customers.push(await createCustomer(setup));
    } finally {
      await setup.close();
    }
    const t = iso.t;
    const ADMIN = `Bearer ${t.adminToken}`;
    const res = await request(t.app).post('/api/keys/rotate').set('Authorization', ADMIN).send({ grace_period_seconds: 86400 });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ rotated: 25, skipped: [], next_cursor: null });
    const fresh = new Map<string, string>(res.body.keys.map((k: { customer_id: string; api_key: string }) => [k.customer_id, k.api_key]));
    for (const c of customers) {
      await request(t.app).get('/api/me').set('X-API-Key', c.apiKey).expect(200);
      await request(t.app).get('/api/me').set('X-API-Key', fresh.get(c.id)!).expect(200);
    }
    skewMs = 86_401_000;
    try {
      for (const c of customers) {
        expectError(await request(t.app).get('/api/me').set('X-API-Key', c.apiKey), 401, 'UNAUTHORIZED');
        await request(t.app).get('/api/me').set('X-API-Key', fresh.get(c.id)!).expect(200);
      }
    } finally {
      skewMs = 0;
    }
    // 4. The audit trail: one summary row and one per customer, no key in any of them.
    const summary = await request(t.app).get('/api/audit').query({ action: 'api_key.bulk_rotate' }).set('Authorization', ADMIN).expect(200);
    expect(summary.body.data[0].details).toMatchObject({ rotated: 25, grace_period_seconds: 86400 });
    const rows = JSON.stringify(await t.db('audit_log').where({ request_id: res.headers['x-request-id'] }));
    expect((rows.match(/"api_key\.issue"/g) ?? []).length).toBe(25);
    for (const k of fresh.values()) expect(rows.includes(k.slice(-35))).toBe(false);
    expect(t.limited).toEqual([]);
  });

  test('when chosen customers are rotated with grace 0, then their old keys stop at once and unknown ids come back as skipped', async () => {
    const t = iso.t;
    const c = await createCustomer(t);
    await request(t.app).get('/api/me').set('X-API-Key', c.apiKey).expect(200);
    const unknown = '01900000-0000-7000-8000-000000000000';
    const res = await request(t.app)
      .post('/api/keys/rotate')
      .set('Authorization', `Bearer ${t.adminToken}`)
      .send({ grace_period_seconds: 0, customer_ids: [c.id, unknown] });
    expect(res.body).toMatchObject({ rotated: 1, skipped: [{ customer_id: unknown, reason: 'not_found' }] });
    expectError(await request(t.app).get('/api/me').set('X-API-Key', c.apiKey), 401, 'UNAUTHORIZED');
    await request(t.app).get('/api/me').set('X-API-Key', res.body.keys[0].api_key).expect(200);
  });
});

describe('secrets from files, reloaded (the step behind every SIGHUP)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-reload-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, `${text}\n`);
    return p;
  };

  test('when the admin token file is rewritten and the reload runs, then the old token is refused and the new accepted; an invalid file changes nothing and is audited', async () => {
    const OLD = newAdminToken();
    const NEW = newAdminToken();
    const file = write('admin', OLD);
    const env = { ADMIN_API_TOKEN: '', ADMIN_API_TOKEN_FILE: file };
    const t = await createTestApp(env);
    try {
      const get = (token: string) => request(t.app).get('/api/customers').set('Authorization', `Bearer ${token}`);
      await get(OLD).expect(200);
      write('admin', NEW);
      const fullEnv = { NODE_ENV: 'test', DATABASE_URL: process.env.TEST_DATABASE_URL!, ...env };
      expect(await reloadSecrets(fullEnv, t.c.config, t.c, t.c.logger)).toMatchObject({ ok: true, reloaded: ['ADMIN_API_TOKEN'] });
      expectError(await get(OLD), 401, 'UNAUTHORIZED');
      await get(NEW).expect(200);

      write('admin', '');
      const failed = await reloadSecrets(fullEnv, t.c.config, t.c, t.c.logger);
      expect(failed.ok).toBe(false);
      expect(failed.problems.join()).toMatch(/ADMIN_API_TOKEN_FILE: .* is empty/);
      await get(NEW).expect(200);
      const row = await t.db('audit_log').where({ action: 'secrets.reload', outcome: 'failure' }).orderBy('id', 'desc').first();
      expect((row!.details.problems as string[])[0]).toMatch(/ADMIN_API_TOKEN_FILE/);
      expect(t.logs.join('').includes(NEW)).toBe(false);
    } finally {
      await t.close();
    }
  });

  test('when the Stripe secret key file changes, then the reload says it needs a restart, naming it and not its value', async () => {
    const file = write('stripe', 'sk_test_first');
    const t = await createTestApp({ STRIPE_SECRET_KEY_FILE: file });
    try {
      write('stripe', 'sk_test_second');
      const env = { NODE_ENV: 'test', DATABASE_URL: process.env.TEST_DATABASE_URL!, ADMIN_API_TOKEN: t.adminToken, STRIPE_SECRET_KEY_FILE: file };
      const result = await reloadSecrets(env, t.c.config, t.c, t.c.logger);
      expect(result).toMatchObject({ ok: true, reloaded: [], restartNeeded: ['STRIPE_SECRET_KEY'] });
      expect(t.logs.join('')).toMatch(/"restart_needed":\["STRIPE_SECRET_KEY"\].*restart to use them/);
      expect(t.logs.join('')).not.toContain('sk_test_second');
    } finally {
      await t.close();
    }
  });
});
