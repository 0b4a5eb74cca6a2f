/**
 * The authorisation matrix, generated from the route table: a route added to the table
 * is checked here without anyone remembering to, and a route without a sample request fails.
 */
import request from 'supertest';
import { routeTable } from '../../src/app';
import { successStatuses, type RouteDef } from '../../src/http/route';
import { expectError } from '../helpers/envelope';
import { CreatedCustomer, createCustomer, deleteCustomer, issueKey, revokeKey, wrongSecretKey } from '../helpers/factories';
import { routeName as name, samples, stripeOnly } from '../helpers/route-samples';
import { createTestApp, newAdminToken, TestApp } from '../helpers/test-app';
import { consoleHeaders, SAME_ORIGIN } from '../helpers/console-session';

let t: TestApp;
let skewMs = 0;
beforeAll(async () => {
  // API_DOCS=admin puts /openapi.json and /docs in the admin rows of the matrix too.
  t = await createTestApp({ API_DOCS: 'admin' }, { now: () => Date.now() + skewMs });
});
afterAll(() => t.close());

function send(r: RouteDef, path: string, body: object | undefined, headers: Record<string, string>) {
  let req = request(t.app)[r.method](path);
  for (const [k, v] of Object.entries(headers)) req = req.set(k, v);
  return body !== undefined ? req.send(body) : req;
}

const routes = () => routeTable(t.c);

describe('route table', () => {
  test('when a route is in the table, then it has a sample request here', () => {
    const missing = routes()
      .map(name)
      .filter((n) => !samples[n]);
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
    for (const r of routes().filter((r) => r.auth === 'admin' || r.auth === 'metrics')) {
      const s = await samples[name(r)]!(t);
      const res = await send(r, s.path, s.body, headers());
      expectError(res, 401, 'UNAUTHORIZED');
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    }
  });

  test('when called with the admin token, then every admin route succeeds with a status it declares', async () => {
    for (const r of routes().filter((r) => r.auth === 'admin' || r.auth === 'metrics')) {
      const s = await samples[name(r)]!(t);
      const res = await send(r, s.path, s.body, { Authorization: `Bearer ${t.adminToken}` });
      expect([name(r), successStatuses(r).includes(res.status)]).toEqual([name(r), true]);
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

describe('console sessions', () => {
  const adminRoutes = () => routes().filter((r) => r.auth === 'admin' || r.auth === 'metrics');
  const consoleRoutes = () => routes().filter((r) => r.auth === 'console');

  test('when admin routes get a console session from the console, then every one succeeds; from another site, every one is 403', async () => {
    const session = await consoleHeaders(t);
    for (const r of adminRoutes()) {
      const s = await samples[name(r)]!(t);
      const res = await send(r, s.path, s.body, session);
      expect([name(r), successStatuses(r).includes(res.status)]).toEqual([name(r), true]);
      const sites: Record<string, string>[] = [{ 'Sec-Fetch-Site': 'cross-site' }, { Origin: 'https://evil.example' }, {}];
      for (const site of sites) {
        expectError(await send(r, s.path, s.body, { Cookie: session.Cookie!, ...site }), 403, 'FORBIDDEN');
      }
    }
  });

  test('when admin routes get a console session that has ended, then every one is 401', async () => {
    const session = await consoleHeaders(t);
    await request(t.app).delete('/api/console/session').set(session).expect(204);
    for (const r of adminRoutes()) {
      const s = await samples[name(r)]!(t);
      expectError(await send(r, s.path, s.body, session), 401, 'UNAUTHORIZED');
    }
  });

  test('when console routes get no session, the admin token, or a session from another site, then they refuse; a session from the console succeeds', async () => {
    expect(consoleRoutes().length).toBeGreaterThan(0);
    for (const r of consoleRoutes()) {
      const s = await samples[name(r)]!(t);
      expectError(await send(r, s.path, s.body, { ...SAME_ORIGIN }), 401, 'UNAUTHORIZED');
      expectError(await send(r, s.path, s.body, { Authorization: `Bearer ${t.adminToken}`, ...SAME_ORIGIN }), 401, 'UNAUTHORIZED');
      const session = await consoleHeaders(t);
      expectError(await send(r, s.path, s.body, { Cookie: session.Cookie!, 'Sec-Fetch-Site': 'cross-site' }), 403, 'FORBIDDEN');
      const res = await send(r, s.path, s.body, session);
      expect([name(r), successStatuses(r).includes(res.status)]).toEqual([name(r), true]);
    }
  });
});

describe('Stripe routes', () => {
  test('when called with no signature, or with an admin token or customer key instead, then 400 INVALID_SIGNATURE', async () => {
    const c = await createCustomer(t);
    const stripeRoutes = routes().filter((r) => r.auth === 'stripe');
    expect(stripeRoutes.length).toBeGreaterThan(0);
    for (const r of stripeRoutes) {
      const variants: Record<string, string>[] = [
        {},
        { Authorization: `Bearer ${t.adminToken}` },
        { 'X-API-Key': c.apiKey },
        { 'Stripe-Signature': 't=1,v1=00' },
      ];
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
      'a secret never issued': async () => ({ 'X-API-Key': wrongSecretKey(a.id) }),
      'a wrong secret for a real key': async () => ({ 'X-API-Key': `${a.apiKey.slice(0, -1)}${a.apiKey.endsWith('A') ? 'B' : 'A'}` }),
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
        const s = await samples[name(r)]!(t, a);
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
      const s = await samples[name(r)]!(t, b);
      const res = await send(r, s.path, s.body, { 'X-API-Key': b.apiKey });
      if (stripeOnly(t, r)) expectError(res, 409, 'STRIPE_DISABLED');
      else expect(res.status).toBeLessThan(300);
      const text = JSON.stringify(res.body);
      expect(text).not.toContain(a.id);
      expect(text).not.toContain(a.email);
    }
  });

  test('when called with a valid key, then every customer route succeeds', async () => {
    for (const r of routes().filter((r) => r.auth === 'customer')) {
      const s = await samples[name(r)]!(t, a);
      const res = await send(r, s.path, s.body, { 'X-API-Key': a.apiKey });
      if (stripeOnly(t, r)) expectError(res, 409, 'STRIPE_DISABLED');
      else expect([name(r), successStatuses(r).includes(res.status)]).toEqual([name(r), true]);
    }
  });
});
