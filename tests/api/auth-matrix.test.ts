/**
 * The authorisation matrix, generated from the route table: a route added to the table
 * is checked here without anyone remembering to, and a route without a sample request fails.
 */
import request from 'supertest';
import { routeTable } from '../../src/app';
import type { RouteDef } from '../../src/http/route';
import { expectError } from '../helpers/envelope';
import { CreatedCustomer, createCustomer, createPlan, deleteCustomer, issueKey, planCode, revokeKey, subscribe, wrongSecretKey } from '../helpers/factories';
import { createTestApp, newAdminToken, TestApp } from '../helpers/test-app';

let t: TestApp;
let skewMs = 0;
beforeAll(async () => {
  t = await createTestApp({}, { now: () => Date.now() + skewMs });
});
afterAll(() => t.close());

/** A valid request for each route: path parameters filled with fresh rows, and a body. */
const samples: Record<string, (t: TestApp) => Promise<{ path: string; body?: object }>> = {
  'GET /health': async () => ({ path: '/health' }),
  'GET /ready': async () => ({ path: '/ready' }),
  'POST /api/customers': async () => ({ path: '/api/customers', body: { email: `m-${Date.now()}-${Math.random()}@example.com`, company_name: 'M' } }),
  'GET /api/customers': async () => ({ path: '/api/customers' }),
  'GET /api/customers/:id': async (t) => ({ path: `/api/customers/${(await createCustomer(t)).id}` }),
  'PATCH /api/customers/:id': async (t) => ({ path: `/api/customers/${(await createCustomer(t)).id}`, body: { company_name: 'New name' } }),
  'DELETE /api/customers/:id': async (t) => ({ path: `/api/customers/${(await createCustomer(t)).id}` }),
  'POST /api/customers/:id/keys': async (t) => ({ path: `/api/customers/${(await createCustomer(t)).id}/keys`, body: {} }),
  'GET /api/customers/:id/keys': async (t) => ({ path: `/api/customers/${(await createCustomer(t)).id}/keys` }),
  'DELETE /api/customers/:id/keys/:keyId': async (t) => {
    const c = await createCustomer(t);
    return { path: `/api/customers/${c.id}/keys/${c.keyId}` };
  },
  'GET /api/audit': async () => ({ path: '/api/audit' }),
  'GET /api/me': async () => ({ path: '/api/me' }),
  'POST /api/usage': async () => ({ path: '/api/usage', body: { metric: 'api_calls', quantity: 1, idempotency_key: `m-${Date.now()}-${Math.random()}` } }),
  'GET /api/usage': async () => ({ path: '/api/usage' }),
  'GET /api/customers/:id/usage': async (t) => ({ path: `/api/customers/${(await createCustomer(t)).id}/usage` }),
  'GET /api/reports/usage': async () => ({ path: '/api/reports/usage' }),
  'GET /api/reports/forwarding': async () => ({ path: '/api/reports/forwarding' }),
  'POST /api/reports/forwarding/retry': async () => ({ path: '/api/reports/forwarding/retry', body: { event_ids: ['01900000-0000-7000-8000-000000000000'] } }),
  'POST /api/plans': async () => ({ path: '/api/plans', body: { code: planCode(), name: 'P', entitlements: { features: [], limits: {} } } }),
  'GET /api/plans': async () => ({ path: '/api/plans' }),
  'GET /api/plans/:code': async (t) => ({ path: `/api/plans/${await createPlan(t)}` }),
  'PATCH /api/plans/:code': async (t) => ({ path: `/api/plans/${await createPlan(t)}`, body: { name: 'Renamed' } }),
  'DELETE /api/plans/:code': async (t) => ({ path: `/api/plans/${await createPlan(t)}` }),
  'POST /api/customers/:id/subscriptions': async (t) => ({ path: `/api/customers/${(await createCustomer(t)).id}/subscriptions`, body: { plan: await createPlan(t) } }),
  'GET /api/customers/:id/subscriptions': async (t) => ({ path: `/api/customers/${(await createCustomer(t)).id}/subscriptions` }),
  'PATCH /api/customers/:id/subscriptions/:subscriptionId': async (t) => {
    const s = await subscribe(t);
    return { path: `/api/customers/${s.customerId}/subscriptions/${s.id}`, body: { plan: await createPlan(t) } };
  },
  'DELETE /api/customers/:id/subscriptions/:subscriptionId': async (t) => {
    const s = await subscribe(t);
    return { path: `/api/customers/${s.customerId}/subscriptions/${s.id}` };
  },
  'GET /api/subscriptions': async () => ({ path: '/api/subscriptions' }),
  'POST /api/webhooks/stripe': async () => ({ path: '/api/webhooks/stripe', body: { id: 'evt_1', object: 'event', type: 'ping', created: 1, data: { object: {} } } }),
  'GET /api/reports/webhooks': async () => ({ path: '/api/reports/webhooks' }),
  'POST /api/stripe/reconcile': async () => ({ path: '/api/stripe/reconcile' }),
  'GET /metrics': async () => ({ path: '/metrics' }),
  'GET /openapi.json': async () => ({ path: '/openapi.json' }),
  'GET /docs': async () => ({ path: '/docs' }),
};

const name = (r: RouteDef) => `${r.method.toUpperCase()} ${r.path}`;

function send(r: RouteDef, path: string, body: object | undefined, headers: Record<string, string>) {
  let req = request(t.app)[r.method](path);
  for (const [k, v] of Object.entries(headers)) req = req.set(k, v);
  return body !== undefined ? req.send(body) : req;
}

const routes = () => routeTable(t.c);

describe('route table', () => {
  test('when a route is in the table, then it has a sample request here', () => {
    const missing = routes().map(name).filter((n) => !samples[n]);
    expect(missing).toEqual([]);
  });
});

describe('admin routes', () => {
  let customer: CreatedCustomer;
  beforeAll(async () => {
    customer = await createCustomer(t);
  });

  test.each([
    ['no credentials', () => ({})],
    ['a wrong token', () => ({ Authorization: `Bearer ${'0'.repeat(63)}1` })],
    ['the token under another scheme', () => ({ Authorization: `Basic ${t.adminToken}` })],
    ['a customer key in X-API-Key', () => ({ 'X-API-Key': customer.apiKey })],
    ['a customer key as the bearer token', () => ({ Authorization: `Bearer ${customer.apiKey}` })],
  ])('when called with %s, then every admin route answers 401 in the envelope', async (_label, headers) => {
    for (const r of routes().filter((r) => (r.auth === 'admin' || r.auth === 'metrics'))) {
      const s = await samples[name(r)]!(t);
      const res = await send(r, s.path, s.body, headers());
      expectError(res, 401, 'UNAUTHORIZED');
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    }
  });

  test('when called with the admin token, then every admin route succeeds', async () => {
    for (const r of routes().filter((r) => (r.auth === 'admin' || r.auth === 'metrics'))) {
      const s = await samples[name(r)]!(t);
      const res = await send(r, s.path, s.body, { Authorization: `Bearer ${t.adminToken}` });
      const actions = ['/api/reports/forwarding/retry', '/api/stripe/reconcile'];
      const expected = r.method === 'delete' && r.path === '/api/plans/:code' ? 204 : r.method === 'post' && !actions.includes(r.path) ? 201 : 200;
      expect([name(r), res.status]).toEqual([name(r), expected]);
    }
  });

  test('when several tokens are configured, then each is accepted (rotation without downtime)', async () => {
    const [old, next] = [newAdminToken(), newAdminToken()];
    const two = await createTestApp({ ADMIN_API_TOKEN: `${old}, ${next}` });
    try {
      for (const token of [old, next]) {
        expect((await request(two.app).get('/api/customers').set('Authorization', `Bearer ${token}`)).status).toBe(200);
      }
      expectError(await request(two.app).get('/api/customers').set('Authorization', `Bearer ${t.adminToken}`), 401, 'UNAUTHORIZED');
    } finally {
      await two.close();
    }
  });
});

describe('Stripe routes', () => {
  test('when called with no signature, or with an admin token or customer key instead, then 400 INVALID_SIGNATURE', async () => {
    const c = await createCustomer(t);
    const stripeRoutes = routes().filter((r) => r.auth === 'stripe');
    expect(stripeRoutes.length).toBeGreaterThan(0);
    for (const r of stripeRoutes) {
      const variants: Record<string, string>[] = [{}, { Authorization: `Bearer ${t.adminToken}` }, { 'X-API-Key': c.apiKey }, { 'Stripe-Signature': 't=1,v1=00' }];
      for (const headers of variants) {
        const s = await samples[name(r)]!(t);
        expectError(await send(r, s.path, s.body, headers), 400, 'INVALID_SIGNATURE');
      }
    }
  });
});

describe('customer routes', () => {
  let a: CreatedCustomer;
  let b: CreatedCustomer;
  const bad: Record<string, () => Promise<Record<string, string>>> = {};

  beforeAll(async () => {
    a = await createCustomer(t);
    b = await createCustomer(t);
    Object.assign(bad, {
      'no key': async () => ({}),
      'an empty key': async () => ({ 'X-API-Key': '' }),
      'a malformed key': async () => ({ 'X-API-Key': 'cust_not-a-key' }),
      'a key with a bad customer id': async () => ({ 'X-API-Key': `cust_${'z'.repeat(36)}_${'A'.repeat(43)}` }),
      'a wrong secret': async () => ({ 'X-API-Key': wrongSecretKey(a.id) }),
      'an unknown customer': async () => ({ 'X-API-Key': wrongSecretKey('01900000-0000-7000-8000-000000000000') }),
      'a revoked key': async () => {
        const c = await createCustomer(t);
        await request(t.app).get('/api/me').set('X-API-Key', c.apiKey).expect(200); // cached first
        await revokeKey(t, c.id, c.keyId);
        return { 'X-API-Key': c.apiKey };
      },
      'an expired key': async () => {
        const c = await createCustomer(t);
        await issueKey(t, c.id, { grace_period_seconds: 60 });
        await request(t.app).get('/api/me').set('X-API-Key', c.apiKey).expect(200); // cached, with its expiry
        skewMs = 61_000; // the grace period has passed, as far as the app can tell
        return { 'X-API-Key': c.apiKey };
      },
      "a deleted customer's key": async () => {
        const c = await createCustomer(t);
        await request(t.app).get('/api/me').set('X-API-Key', c.apiKey).expect(200);
        await deleteCustomer(t, c.id);
        return { 'X-API-Key': c.apiKey };
      },
      'the admin token as a bearer': async () => ({ Authorization: `Bearer ${t.adminToken}` }),
      'the admin token as the key': async () => ({ 'X-API-Key': t.adminToken }),
    });
  });

  test('when called with a bad credential of any kind, then every customer route answers 401 in the envelope', async () => {
    for (const r of routes().filter((r) => r.auth === 'customer')) {
      for (const [label, headers] of Object.entries(bad)) {
        const s = await samples[name(r)]!(t);
        let res;
        try {
          res = await send(r, s.path, s.body, await headers());
        } finally {
          skewMs = 0;
        }
        expect([name(r), label, res.status]).toEqual([name(r), label, 401]);
        expectError(res, 401, 'UNAUTHORIZED');
      }
    }
  });

  test("when called with another customer's key, then no customer route shows the first customer's data", async () => {
    for (const r of routes().filter((r) => r.auth === 'customer')) {
      const s = await samples[name(r)]!(t);
      const res = await send(r, s.path, s.body, { 'X-API-Key': b.apiKey });
      expect(res.status).toBeLessThan(300);
      const text = JSON.stringify(res.body);
      expect(text).not.toContain(a.id);
      expect(text).not.toContain(a.email);
    }
  });

  test('when called with a valid key, then every customer route succeeds', async () => {
    for (const r of routes().filter((r) => r.auth === 'customer')) {
      const s = await samples[name(r)]!(t);
      const res = await send(r, s.path, s.body, { 'X-API-Key': a.apiKey });
      expect([name(r), res.status]).toEqual([name(r), r.method === 'post' ? 201 : 200]);
    }
  });
});
