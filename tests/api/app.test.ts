import request from 'supertest';
import { expectError } from '../helpers/envelope';
import { createCustomer } from '../helpers/factories';
import { migrateLatest } from '../../src/db/migration-source';
import { createTestApp, TestApp, testDatabaseUrl } from '../helpers/test-app';

let t: TestApp;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

describe('health and readiness', () => {
  test('when the service runs, then /health answers without credentials', async () => {
    const res = await request(t.app).get('/health');
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('ok');
  });

  test('when the database is up and migrated, then /ready answers 200', async () => {
    const res = await request(t.app).get('/ready');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ready', checks: { database: 'ok', migrations: 'current' } });
  });

  test('when migrations are pending, then /ready answers 503 naming them', async () => {
    const name = `ready_${Date.now()}_${process.pid}`;
    await t.db.raw('create database ??', [name]);
    const url = new URL(testDatabaseUrl());
    url.pathname = `/${name}`;
    const fresh = await createTestApp({}, { databaseUrl: url.toString() });
    try {
      const res = await request(fresh.app).get('/ready');
      expectError(res, 503, 'SERVICE_UNAVAILABLE');
      expect(res.body.error.details.pending_migrations).toContain('20261127000001_create_customers');
    } finally {
      await fresh.close();
      await t.db.raw('drop database ?? with (force)', [name]);
    }
  });
});

describe('when /ready is called often', () => {
  let r: TestApp;
  let clock = Date.now();
  const checks: string[] = [];
  beforeAll(async () => {
    // A clock that moves only when the test moves it: "within a second" is exact.
    r = await createTestApp({}, { now: () => clock });
    r.db.on('query', (q: { sql: string }) => {
      if (q.sql === 'select 1') checks.push(q.sql);
    });
  });
  afterAll(() => r.close());

  const burst = async (concurrent: number) => {
    const all = await Promise.all(Array.from({ length: concurrent }, () => request(r.app).get('/ready')));
    return all.map((res) => res.status);
  };

  test('then concurrent and repeated calls within a second share one check, and after the second a new one runs', async () => {
    expect(await burst(50)).toEqual(Array(50).fill(200));
    expect(checks).toHaveLength(1);
    for (let i = 0; i < 20; i++) await request(r.app).get('/ready').expect(200);
    clock += 999;
    expect(await burst(20)).toEqual(Array(20).fill(200));
    expect(checks).toHaveLength(1);

    clock += 1;
    expect(await burst(20)).toEqual(Array(20).fill(200));
    expect(checks).toHaveLength(2);
    clock += 1000;
    await request(r.app).get('/ready').expect(200);
    expect(checks).toHaveLength(3);
  });

  test('then a failed check is reused for that second too, and a check after it sees the repair', async () => {
    const name = `ready_cache_${Date.now()}_${process.pid}`;
    await t.db.raw('create database ??', [name]);
    const url = new URL(testDatabaseUrl());
    url.pathname = `/${name}`;
    let now = Date.now();
    const fresh = await createTestApp({}, { databaseUrl: url.toString(), now: () => now });
    let runs = 0;
    fresh.db.on('query', (q: { sql: string }) => void (q.sql === 'select 1' && runs++));
    try {
      const first = await Promise.all(Array.from({ length: 20 }, () => request(fresh.app).get('/ready')));
      for (const res of first) expectError(res, 503, 'SERVICE_UNAVAILABLE');
      expect(runs).toBe(1);
      await migrateLatest(fresh.db);
      now += 500;
      const cached = await request(fresh.app).get('/ready');
      expectError(cached, 503, 'SERVICE_UNAVAILABLE');
      expect(cached.body.error.details.pending_migrations).toContain('20261127000001_create_customers');
      expect(runs).toBe(1);
      now += 500;
      await request(fresh.app).get('/ready').expect(200);
      expect(runs).toBe(2);
    } finally {
      await fresh.close();
      await t.db.raw('drop database ?? with (force)', [name]);
    }
  });
});

describe('when the database is unreachable', () => {
  let down: TestApp;
  beforeAll(async () => {
    down = await createTestApp({}, { databaseUrl: 'postgres://postgres@127.0.0.1:1/none' });
  });
  afterAll(() => down.close());

  test('then /ready and data routes answer 503 in the envelope, never a 500 or a stack', async () => {
    expectError(await request(down.app).get('/ready'), 503, 'SERVICE_UNAVAILABLE');
    const list = await request(down.app).get('/api/customers').set('Authorization', `Bearer ${down.adminToken}`);
    expectError(list, 503, 'SERVICE_UNAVAILABLE');
    expect(list.headers['retry-after']).toBe('5');
    const me = await request(down.app)
      .get('/api/me')
      .set('X-API-Key', `cust_01900000-0000-7000-8000-000000000000_${'A'.repeat(43)}`);
    expectError(me, 503, 'SERVICE_UNAVAILABLE');
    expect(JSON.stringify(list.body)).not.toMatch(/ECONNREFUSED|at .*\.ts/);
  });
});

describe('errors and headers', () => {
  test('when a route does not exist, then 404 in the envelope', async () => {
    expectError(await request(t.app).get('/nope'), 404, 'NOT_FOUND');
    expectError(await request(t.app).put('/api/customers'), 404, 'NOT_FOUND');
  });

  test('when a sane X-Request-Id is sent, then it is not taken as ours: the header and the envelope carry our own UUID', async () => {
    const res = await request(t.app).get('/nope').set('X-Request-Id', 'trace-abc_123.4:5');
    expect(res.headers['x-request-id']).toMatch(UUID);
    expect(res.body.error.requestId).toBe(res.headers['x-request-id']);
    expect(JSON.stringify(res.headers)).not.toContain('trace-abc_123.4:5');
    // The client's id is kept beside ours in the access log, to correlate with the caller's logs.
    const line = t.logs.map((l) => JSON.parse(l)).find((l) => l.reqId === res.headers['x-request-id'] && l.msg === 'request completed');
    expect(line).toMatchObject({ clientRequestId: 'trace-abc_123.4:5', status: 404 });
  });

  test('when a request is answered, then its access-log line has exactly the access fields and no credential', async () => {
    const c = await createCustomer(t);
    const res = await request(t.app)
      .post('/api/usage?probe=1')
      .set('X-API-Key', c.apiKey)
      .set('Authorization', 'Bearer not-ours')
      .set('Cookie', 'session=abc')
      .send({ metric: 'api_calls', quantity: 1, idempotency_key: `line-${Date.now()}` })
      .expect(201);
    const raw = t.logs.find((l) => l.includes(res.headers['x-request-id']!) && l.includes('request completed'))!;
    const line = JSON.parse(raw) as Record<string, unknown>;
    expect(Object.keys(line).sort()).toEqual(['ip', 'level', 'method', 'ms', 'msg', 'reqId', 'service', 'status', 'time', 'url'].sort());
    expect(line).toMatchObject({ level: 30, method: 'POST', url: '/api/usage?probe', status: 201, service: 'billing-service' });
    expect(typeof line.ip).toBe('string');
    // The secret is everything after cust_<uuid>_ (base64url may hold '_' itself: its last fragment can be one letter).
    for (const secret of [c.apiKey, c.apiKey.split('_').slice(2).join('_'), 'not-ours', 'session=abc']) expect(raw).not.toContain(secret);
  });

  test('when two requests send the same X-Request-Id, then each still gets an id of its own', async () => {
    const a = await request(t.app).get('/health').set('X-Request-Id', 'same-id');
    const b = await request(t.app).get('/health').set('X-Request-Id', a.headers['x-request-id']!);
    expect(a.headers['x-request-id']).toMatch(UUID);
    expect(b.headers['x-request-id']).toMatch(UUID);
    expect(b.headers['x-request-id']).not.toBe(a.headers['x-request-id']);
  });

  test.each([['x'.repeat(200)], ['bad id with spaces'], ['<script>'], ['a\u00e9']])(
    'when the X-Request-Id is %j, then our own id is used',
    async (incoming) => {
      const res = await request(t.app).get('/health').set('X-Request-Id', incoming);
      expect(res.headers['x-request-id']).toMatch(UUID);
    },
  );

  test('when any response is sent, then helmet’s security headers are on it and X-Powered-By is not', async () => {
    for (const res of [await request(t.app).get('/health'), await request(t.app).get('/api/me')]) {
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['strict-transport-security']).toMatch(/max-age=/);
      expect(res.headers['content-security-policy']).toContain("default-src 'self'");
      expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
      expect(res.headers['x-powered-by']).toBeUndefined();
    }
  });

  test('when an unexpected error happens, then 500 INTERNAL_ERROR with a generic message, details only in the log', async () => {
    const c = await createCustomer(t);
    const original = t.c.customers.get;
    t.c.customers.get = async () => {
      throw new Error('secret internal detail');
    };
    try {
      const res = await request(t.app).get(`/api/customers/${c.id}`).set('Authorization', `Bearer ${t.adminToken}`);
      expectError(res, 500, 'INTERNAL_ERROR');
      expect(res.body.error.message).toBe('Internal server error');
      expect(JSON.stringify(res.body)).not.toContain('secret internal detail');
      const line = t.logs.find((l) => l.includes('secret internal detail'));
      expect(line).toContain(res.body.error.requestId);
    } finally {
      t.c.customers.get = original;
    }
  });
});
