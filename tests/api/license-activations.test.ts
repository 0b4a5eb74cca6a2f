/**
 * Activations: the plan's limits.instances under concurrency, heartbeats and stale release
 * on a fake clock, one customer never reaching another's, garbage fingerprints, and offline licenses.
 */
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { expectError } from '../helpers/envelope';
import { createCustomer, createPlan, subscribe, type CreatedCustomer } from '../helpers/factories';
import { createTestApp, type TestApp } from '../helpers/test-app';

const DAY_MS = 86_400_000;
let clock = Date.now();
let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({}, { now: () => clock });
});
afterAll(() => t.close());
beforeEach(() => {
  clock = Date.now();
});

const fp = () => `host-${randomBytes(6).toString('hex')}`;
const admin = () => ({ Authorization: `Bearer ${t.adminToken}` });

/** A customer subscribed to a plan allowing `instances` instances (null: no limit), its key already cached. */
async function customerWith(instances: number | null): Promise<CreatedCustomer> {
  const plan = await createPlan(t, { entitlements: { features: [], limits: instances === null ? {} : { instances } } });
  const s = await subscribe(t, { plan });
  await request(t.app).get('/api/me').set('X-API-Key', s.customer.apiKey).expect(200);
  return s.customer;
}

const activate = (c: CreatedCustomer, fingerprint: string, extra: object = {}) =>
  request(t.app)
    .post('/api/licenses/activations')
    .set('X-API-Key', c.apiKey)
    .send({ fingerprint, ...extra });
const list = (c: CreatedCustomer) => request(t.app).get('/api/licenses/activations').set('X-API-Key', c.apiKey);
const fetchBound = (c: CreatedCustomer, fingerprint: string) => request(t.app).get('/api/licenses').query({ fingerprint }).set('X-API-Key', c.apiKey);

describe('activating', () => {
  test('when an instance activates, then 201 with its activation, 200 when it activates again, and one audit row', async () => {
    const c = await customerWith(2);
    const f = fp();
    const first = await activate(c, f, { name: 'build server', hostname: 'ci-1.acme.internal' });
    expect(first.status).toBe(201);
    expect(first.body.activation).toMatchObject({
      customer_id: c.id,
      fingerprint: f,
      name: 'build server',
      hostname: 'ci-1.acme.internal',
      expires_at: null,
      released_at: null,
    });
    const again = await activate(c, f);
    expect(again.status).toBe(200);
    expect(again.body.activation.id).toBe(first.body.activation.id);
    expect((await list(c)).body.data.map((a: { fingerprint: string }) => a.fingerprint)).toEqual([f]);
    const rows = await t.db('audit_log').where({ action: 'license.activation_create', target_id: first.body.activation.id });
    expect(rows.map((r) => r.details)).toEqual([{ customer_id: c.id, fingerprint: f, offline: false, instance_key_thumbprint: null }]);
  });

  test('when 20 instances activate at once against a limit of 3, then exactly 3 succeed and 17 get 409 INSTANCE_LIMIT_REACHED', async () => {
    const c = await customerWith(3);
    const results = await Promise.all(Array.from({ length: 20 }, () => activate(c, fp())));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([...Array(3).fill(201), ...Array(17).fill(409)]);
    for (const r of results.filter((x) => x.status === 409)) expectError(r, 409, 'INSTANCE_LIMIT_REACHED');
    expect((await list(c)).body.data).toHaveLength(3);
    expect(Number((await t.db('license_activations').where({ customer_id: c.id }).count({ n: '*' }))[0]!.n)).toBe(3);
  });

  test("when another transaction holds the customer's row, then an activation waits for it; a customer deleted meanwhile is refused with 409 CUSTOMER_DELETED", async () => {
    const c = await customerWith(2);
    const offline = (fingerprint: string) => request(t.app).post(`/api/customers/${c.id}/licenses`).set(admin()).send({ fingerprint });
    /** Holds the customer's row lock, starts an activation, and waits until it is blocked on that lock; then `meanwhile`, commit. */
    async function behindLock(fingerprint: string, meanwhile: (trx: typeof t.db) => Promise<unknown>) {
      const trx = await t.db.transaction();
      try {
        const { rows } = await trx.raw<{ rows: { pid: number }[] }>('select pg_backend_pid() as pid');
        await trx('customers').where({ id: c.id }).forUpdate().first();
        let settled = false;
        const pending = offline(fingerprint).then((r) => ((settled = true), r));
        const blocked = async () =>
          Number((await t.db.raw('select count(*) as n from pg_stat_activity where ? = any(pg_blocking_pids(pid))', [rows[0]!.pid])).rows[0].n);
        for (let i = 0; (await blocked()) === 0; i++) {
          if (i > 200) throw new Error('the activation never waited for the customer row lock');
          await new Promise((r) => setTimeout(r, 25));
        }
        expect(settled).toBe(false);
        await meanwhile(trx);
        await trx.commit();
        return pending;
      } catch (err) {
        await trx.rollback();
        throw err;
      }
    }
    // Control: the lock released unchanged, the activation goes through.
    expect((await behindLock(fp(), async () => undefined)).status).toBe(201);
    const refused = await behindLock(fp(), (trx) => trx('customers').where({ id: c.id }).update({ status: 'deleted' }));
    expectError(refused, 409, 'CUSTOMER_DELETED');
    expect(await t.db('license_activations').where({ customer_id: c.id })).toHaveLength(1);
  });

  test('when the plan sets no instance limit, then any number activate', async () => {
    const c = await customerWith(null);
    const results = await Promise.all(Array.from({ length: 8 }, () => activate(c, fp())));
    expect(results.map((r) => r.status)).toEqual(Array(8).fill(201));
  });

  test('when a customer has no subscription, then activating is 404 LICENSE_NOT_FOUND', async () => {
    const c = await createCustomer(t);
    expectError(await activate(c, fp()), 404, 'LICENSE_NOT_FOUND');
  });

  test.each([
    ['too short', 'abc'],
    ['too long', 'a'.repeat(129)],
    ['spaces', 'host name 1'],
    ['a slash', 'host/12345'],
    ['non-ASCII', 'hôte-123456'],
    ['a NUL', 'host\u0000123456'],
    ['a number', 12345678],
    ['null', null],
    ['an object', { id: 'host-12345' }],
    ['an array', ['host-12345']],
  ])('when the fingerprint is %s, then 422 VALIDATION_FAILED and nothing is stored', async (_label, value) => {
    const c = await customerWith(null);
    expectError(await request(t.app).post('/api/licenses/activations').set('X-API-Key', c.apiKey).send({ fingerprint: value }), 422, 'VALIDATION_FAILED');
    if (typeof value === 'string')
      expectError(await request(t.app).get('/api/licenses').query({ fingerprint: value }).set('X-API-Key', c.apiKey), 422, 'VALIDATION_FAILED');
    expect((await list(c)).body.data).toEqual([]);
  });

  test('when the body has unknown fields or a name with control characters, then 422', async () => {
    const c = await customerWith(null);
    expectError(await activate(c, fp(), { instances: 100 }), 422, 'VALIDATION_FAILED');
    expectError(await activate(c, fp(), { name: 'evil\u202ename' }), 422, 'VALIDATION_FAILED');
  });
});

describe('heartbeats and stale activations', () => {
  test('when a license is fetched with an active fingerprint, then it is bound to it and counts as its heartbeat', async () => {
    const c = await customerWith(1);
    const f = fp();
    await activate(c, f).expect(201);
    clock += 10 * DAY_MS;
    const res = await fetchBound(c, f).expect(200);
    expect(res.body.claims.instance).toBe(f);
    const row = await t.db('license_activations').where({ customer_id: c.id, fingerprint: f }).first();
    expect(row!.last_seen_at.getTime()).toBe(clock);
    expect((await t.db('audit_log').where({ action: 'license.issue', target_id: res.body.claims.jti }).first())!.details.fingerprint).toBe(f);
    // 20 days after activating, 10 after the heartbeat: still live.
    clock += 10 * DAY_MS;
    expect((await list(c)).body.data.map((a: { fingerprint: string }) => a.fingerprint)).toEqual([f]);
  });

  test('when an activation goes unseen past LICENSE_HEARTBEAT_DAYS, then it is released (audited) and its seat reused', async () => {
    const c = await customerWith(1);
    const [gone, next] = [fp(), fp()];
    const first = await activate(c, gone).expect(201);
    expectError(await activate(c, next), 409, 'INSTANCE_LIMIT_REACHED');
    clock += 15 * DAY_MS;
    expect((await activate(c, next)).status).toBe(201);
    const row = await t.db('license_activations').where({ id: first.body.activation.id }).first();
    expect([row!.release_reason, row!.released_at!.getTime()]).toEqual(['stale', clock]);
    const audit = await t.db('audit_log').where({ action: 'license.activation_expire', target_id: first.body.activation.id });
    expect(audit.map((r) => [r.actor, r.details.customer_id, r.details.fingerprint])).toEqual([['system', c.id, gone]]);
    expectError(await fetchBound(c, gone), 404, 'ACTIVATION_NOT_FOUND');
    // It may come back: a new activation when a seat is free.
    await request(t.app).delete(`/api/licenses/activations/${next}`).set('X-API-Key', c.apiKey).expect(200);
    expect((await activate(c, gone)).status).toBe(201);
  });

  test('when the sweep runs, then every stale activation is released without anyone counting', async () => {
    const c = await customerWith(null);
    const f = fp();
    await activate(c, f).expect(201);
    clock += 15 * DAY_MS;
    expect(await t.c.licenses.sweep()).toBeGreaterThanOrEqual(1);
    expect((await t.db('license_activations').where({ customer_id: c.id, fingerprint: f }).first())!.release_reason).toBe('stale');
  });

  test('when a fingerprint was never activated, then fetching a license bound to it is 404 ACTIVATION_NOT_FOUND', async () => {
    const c = await customerWith(null);
    expectError(await fetchBound(c, fp()), 404, 'ACTIVATION_NOT_FOUND');
  });
});

describe('one customer, its own activations only', () => {
  test('when another customer names a fingerprint of the first, then it cannot see, bind or release it', async () => {
    const [a, b] = [await customerWith(5), await customerWith(5)];
    const f = fp();
    await activate(a, f).expect(201);
    expect(JSON.stringify((await list(b)).body)).not.toContain(f);
    expectError(await fetchBound(b, f), 404, 'ACTIVATION_NOT_FOUND');
    expectError(await request(t.app).delete(`/api/licenses/activations/${f}`).set('X-API-Key', b.apiKey), 404, 'NOT_FOUND');
    // b activating the same fingerprint takes a seat of b's, and leaves a's alone.
    expect((await activate(b, f)).status).toBe(201);
    expect((await list(a)).body.data.map((x: { fingerprint: string }) => x.fingerprint)).toEqual([f]);
    expect((await fetchBound(a, f)).status).toBe(200);
  });

  test('when a customer releases its own, then the seat is free, the row kept as released, and the release audited', async () => {
    const c = await customerWith(1);
    const f = fp();
    await activate(c, f).expect(201);
    const res = await request(t.app).delete(`/api/licenses/activations/${f}`).set('X-API-Key', c.apiKey).expect(200);
    expect(res.body.activation).toMatchObject({ fingerprint: f, release_reason: 'customer', released_at: expect.any(String) });
    expect((await list(c)).body.data).toEqual([]);
    expect((await activate(c, fp())).status).toBe(201);
    expect(await t.db('audit_log').where({ action: 'license.activation_release', target_id: res.body.activation.id }).first()).toMatchObject({
      actor: 'customer',
      details: { customer_id: c.id, fingerprint: f, by: 'customer' },
    });
    expectError(await request(t.app).delete(`/api/licenses/activations/${f}`).set('X-API-Key', c.apiKey), 404, 'NOT_FOUND');
  });

  test('when an admin lists and releases a customer’s activations, then it sees them and frees the seat', async () => {
    const c = await customerWith(1);
    const f = fp();
    await activate(c, f).expect(201);
    const listed = await request(t.app).get(`/api/customers/${c.id}/activations`).set(admin()).expect(200);
    expect(listed.body.data.map((a: { fingerprint: string }) => a.fingerprint)).toEqual([f]);
    const res = await request(t.app).delete(`/api/customers/${c.id}/activations/${f}`).set(admin()).expect(200);
    expect(res.body.activation.release_reason).toBe('admin');
    expect((await activate(c, fp())).status).toBe(201);
    expectError(await request(t.app).get('/api/customers/01900000-0000-7000-8000-000000000000/activations').set(admin()), 404, 'NOT_FOUND');
    expectError(await request(t.app).delete(`/api/customers/${c.id}/activations/${f}`).set(admin()), 404, 'NOT_FOUND');
  });
});

describe('seats held until the last bound license expires', () => {
  const release = (c: CreatedCustomer, f: string) => request(t.app).delete(`/api/licenses/activations/${f}`).set('X-API-Key', c.apiKey);
  /** Activate, fetch a bound license, release: the cycle that used to multiply seats. Answers the license's exp, or null when refused. */
  async function cycle(c: CreatedCustomer, f: string): Promise<{ exp: number; fingerprint: string } | null> {
    const a = await activate(c, f);
    if (a.status === 409) return null;
    expect(a.status).toBe(201);
    const l = await fetchBound(c, f).expect(200);
    await release(c, f).expect(200);
    return { exp: l.body.claims.exp as number, fingerprint: l.body.claims.instance as string };
  }

  test('when instances activate, fetch and release one after another on a 3-seat plan, then never a 4th valid license; the 409 says when a seat frees', async () => {
    const c = await customerWith(3);
    const got: { exp: number; fingerprint: string }[] = [];
    for (let i = 0; i < 8; i++) {
      const r = await cycle(c, fp());
      if (r) got.push(r);
      clock += 60_000;
    }
    expect(got).toHaveLength(3);
    const refused = await activate(c, fp());
    expectError(refused, 409, 'INSTANCE_LIMIT_REACHED');
    const firstExp = Math.min(...got.map((g) => g.exp));
    expect(refused.body.error.details).toEqual({ limit: 3, seat_frees_at: new Date(firstExp * 1000).toISOString() });
    expect(refused.body.error.message).toContain(new Date(firstExp * 1000).toISOString());
    expect(Number(refused.headers['retry-after'])).toBe(firstExp - Math.floor(clock / 1000));
    // The released activations are listed with until when they hold their seat.
    const listed = (await list(c)).body.data as { fingerprint: string; released_at: string | null; seat_held_until: string }[];
    expect(listed.map((a) => [a.fingerprint, a.seat_held_until])).toEqual(got.map((g) => [g.fingerprint, new Date(g.exp * 1000).toISOString()]));
    expect(listed.every((a) => a.released_at !== null)).toBe(true);
    // Control: once the first license has expired, its seat is free again, and only that one.
    clock = firstExp * 1000 + 1000;
    expect((await activate(c, fp())).status).toBe(201);
    expectError(await activate(c, fp()), 409, 'INSTANCE_LIMIT_REACHED');
  });

  test('when 12 instances run the activate-fetch-release cycle at once on a 3-seat plan, then exactly 3 get a license', async () => {
    const c = await customerWith(3);
    const results = await Promise.all(Array.from({ length: 12 }, () => cycle(c, fp())));
    const licensed = results.filter((r) => r !== null);
    expect(licensed).toHaveLength(3);
    expect(new Set(licensed.map((l) => l.fingerprint)).size).toBe(3);
    const issued = await t.db('audit_log').where({ action: 'license.issue' }).whereRaw("details->>'customer_id' = ?", [c.id]);
    expect(issued).toHaveLength(3);
  });

  test('when a released instance activates again while its license is valid, then it takes its own seat back, not a new one', async () => {
    const c = await customerWith(1);
    const f = fp();
    expect(await cycle(c, f)).not.toBeNull();
    expectError(await activate(c, fp()), 409, 'INSTANCE_LIMIT_REACHED');
    expect((await activate(c, f)).status).toBe(201);
    expect((await fetchBound(c, f)).status).toBe(200);
  });

  test('when the plan limits instances, then an unbound license is 422; without a limit it is issued (control)', async () => {
    const limited = await customerWith(3);
    const res = await request(t.app).get('/api/licenses').set('X-API-Key', limited.apiKey);
    expectError(res, 422, 'VALIDATION_FAILED');
    expect(JSON.stringify(res.body.error.details)).toContain('fingerprint');
    const open = await customerWith(null);
    const ok = await request(t.app).get('/api/licenses').set('X-API-Key', open.apiKey).expect(200);
    expect(ok.body.claims.instance).toBeUndefined();
  });
});

describe('offline activation (air-gapped instances)', () => {
  test('when an admin issues an offline license, then it is bound to the fingerprint, lasts the chosen TTL, holds a seat until it expires, and is audited', async () => {
    const code = await createPlan(t, { entitlements: { features: [], limits: { instances: 1 } } });
    const free = await createTestApp({ LICENSE_DEFAULT_PLAN: code }, { now: () => clock });
    try {
      const c = await createCustomer(free);
      const f = fp();
      const res = await request(free.app)
        .post(`/api/customers/${c.id}/licenses`)
        .set('Authorization', `Bearer ${free.adminToken}`)
        .send({ fingerprint: f, name: 'vault', ttl: '365d' });
      expect(res.status).toBe(201);
      const iat = Math.floor(clock / 1000);
      expect(res.body.claims).toMatchObject({ sub: c.id, instance: f, status: 'active', iat, exp: iat + 365 * 86_400 });
      expect(res.body.jwks_url).toMatch(/\/\.well-known\/jwks\.json$/);
      // An air-gapped instance never calls back: its seat stays taken long past the heartbeat window.
      clock += 100 * DAY_MS;
      const other = await request(free.app).post('/api/licenses/activations').set('X-API-Key', c.apiKey).send({ fingerprint: fp() });
      expectError(other, 409, 'INSTANCE_LIMIT_REACHED');
      const audit = await free.db('audit_log').where({ action: 'license.issue_offline', target_id: res.body.claims.jti });
      expect(audit.map((r) => [r.actor, r.details.fingerprint, r.details.status])).toEqual([['admin', f, 'active']]);
      // Once it has expired, the seat is free again.
      clock += 266 * DAY_MS;
      expect((await request(free.app).post('/api/licenses/activations').set('X-API-Key', c.apiKey).send({ fingerprint: fp() })).status).toBe(201);
    } finally {
      await free.close();
    }
  });

  test('when the customer tries to release an offline activation, then 403; an admin can, and the seat stays held until the license expires', async () => {
    const c = await customerWith(1);
    const f = fp();
    const issued = await request(t.app).post(`/api/customers/${c.id}/licenses`).set(admin()).send({ fingerprint: f, ttl: '20d' }).expect(201);
    const exp = issued.body.claims.exp as number;
    const byCustomer = await request(t.app).delete(`/api/licenses/activations/${f}`).set('X-API-Key', c.apiKey);
    expectError(byCustomer, 403, 'FORBIDDEN');
    const row = await t.db('license_activations').where({ customer_id: c.id, fingerprint: f }).first();
    expect(row!.released_at).toBeNull();
    // Control: the admin may.
    const byAdmin = await request(t.app).delete(`/api/customers/${c.id}/activations/${f}`).set(admin()).expect(200);
    expect(byAdmin.body.activation).toMatchObject({ release_reason: 'admin', seat_held_until: new Date(exp * 1000).toISOString() });
    // Released, but the offline license still verifies at the site: the seat is still taken.
    const refused = await activate(c, fp());
    expectError(refused, 409, 'INSTANCE_LIMIT_REACHED');
    expect(refused.body.error.details.seat_frees_at).toBe(new Date(exp * 1000).toISOString());
    clock = exp * 1000 + 1000;
    expect((await activate(c, fp())).status).toBe(201);
  });

  test('when the subscription’s period ends first, then the offline license still ends with it', async () => {
    const c = await customerWith(null);
    const res = await request(t.app).post(`/api/customers/${c.id}/licenses`).set(admin()).send({ fingerprint: fp() }).expect(201);
    expect(res.body.claims.exp).toBe(res.body.claims.valid_until);
  });

  test.each([['0d'], ['30m'], ['3651d'], ['1y'], [365]])('when the TTL is %p, then 422', async (ttl) => {
    const c = await customerWith(null);
    expectError(await request(t.app).post(`/api/customers/${c.id}/licenses`).set(admin()).send({ fingerprint: fp(), ttl }), 422, 'VALIDATION_FAILED');
  });

  test('when the customer is deleted or has no license, then 409 CUSTOMER_DELETED or 404 LICENSE_NOT_FOUND', async () => {
    const c = await createCustomer(t);
    expectError(await request(t.app).post(`/api/customers/${c.id}/licenses`).set(admin()).send({ fingerprint: fp() }), 404, 'LICENSE_NOT_FOUND');
    await request(t.app).delete(`/api/customers/${c.id}`).set(admin()).expect(200);
    expectError(await request(t.app).post(`/api/customers/${c.id}/licenses`).set(admin()).send({ fingerprint: fp() }), 409, 'CUSTOMER_DELETED');
  });
});
