/**
 * POST /api/billing/portal-session against a fake Stripe through the real stripe-node client: which
 * return URLs reach Stripe, whose Stripe customer the session is for, what happens when Stripe is
 * off, the customer is not linked or Stripe fails, and that the session URL is never written down.
 */
import request from 'supertest';
import { routeTable } from '../../src/app';
import { portalSessionResponse } from '../../src/modules/billing-portal/billing-portal-schemas';
import { expectError } from '../helpers/envelope';
import { createCustomer, type CreatedCustomer } from '../helpers/factories';
import { startFakeStripe, type FakeStripe } from '../helpers/fake-stripe';
import { createTestApp, type TestApp } from '../helpers/test-app';

const RULES = 'https://vendor.example/billing,https://app.vendor.example';
let stripe: FakeStripe;
let t: TestApp;

beforeAll(async () => {
  stripe = await startFakeStripe();
  t = await createTestApp({
    STRIPE_SECRET_KEY: 'sk_test_portal',
    STRIPE_API_BASE: stripe.url,
    STRIPE_TIMEOUT_MS: '300',
    FORWARDER_ENABLED: 'false',
    BILLING_PORTAL_RETURN_URLS: RULES,
    BILLING_PORTAL_CONFIGURATION: 'bpc_vendor123',
  });
});
afterAll(async () => {
  await t.close();
  await stripe.close();
});
beforeEach(() => stripe.clearFailures());

const portal = (app: TestApp, key: string, body: object) => request(app.app).post('/api/billing/portal-session').set('X-API-Key', key).send(body);
const stripeIdOf = async (app: TestApp, id: string) => (await app.db('customers').where({ id }).first())!.stripe_customer_id;
const auditRows = (app: TestApp, customerId: string) => app.db('audit_log').where({ action: 'billing.portal_session', target_id: customerId }).orderBy('id');

describe('a session for the key’s customer', () => {
  test('when an allowed return URL is sent, then 201 with the session URL, expires_at five minutes after Stripe created it, no-store, and Stripe got the normalised URL and the configuration', async () => {
    const c = await createCustomer(t);
    const res = await portal(t, c.apiKey, { return_url: 'HTTPS://Vendor.Example:443/billing/plans?from=app' });
    expect(res.status).toBe(201);
    expect(portalSessionResponse.safeParse(res.body).success).toBe(true);
    expect(res.headers['cache-control']).toBe('no-store');
    const session = stripe.portalSessions.at(-1)!;
    expect(res.body.url).toBe(session.url);
    expect(session).toMatchObject({
      customer: await stripeIdOf(t, c.id),
      return_url: 'https://vendor.example/billing/plans?from=app',
      configuration: 'bpc_vendor123',
    });
    expect(Date.parse(res.body.expires_at)).toBe((session.created + 300) * 1000);
  });

  test('when two customers each ask, then each session is for its own Stripe customer, whatever the body says', async () => {
    const [a, b] = [await createCustomer(t), await createCustomer(t)];
    const before = stripe.portalSessions.length;
    expect((await portal(t, b.apiKey, { return_url: 'https://app.vendor.example/' })).status).toBe(201);
    // A customer named in the body is no field of the contract: refused before anything is done.
    expectError(await portal(t, b.apiKey, { return_url: 'https://app.vendor.example/', customer: await stripeIdOf(t, a.id) }), 422, 'VALIDATION_FAILED');
    expect((await portal(t, a.apiKey, { return_url: 'https://app.vendor.example/' })).status).toBe(201);
    expect(stripe.portalSessions.slice(before).map((s) => s.customer)).toEqual([await stripeIdOf(t, b.id), await stripeIdOf(t, a.id)]);
  });

  test('when the same customer asks twice, then it gets two different sessions (nothing is cached)', async () => {
    const c = await createCustomer(t);
    const [one, two] = [
      await portal(t, c.apiKey, { return_url: 'https://app.vendor.example/' }),
      await portal(t, c.apiKey, { return_url: 'https://app.vendor.example/' }),
    ];
    expect(one.body.url).not.toBe(two.body.url);
  });
});

describe('return URLs: refused before any Stripe call, each with a control', () => {
  let c: CreatedCustomer;
  beforeAll(async () => {
    c = await createCustomer(t);
  });

  test.each([
    ['another host', 'https://evil.test/billing', 'its origin'],
    ['the same host over http', 'http://vendor.example/billing', 'its origin'],
    ['a host that starts with the allowed one', 'https://vendor.example.evil.test/billing', 'its origin'],
    ['the allowed host as a user name', 'https://vendor.example@evil.test/billing', 'user name'],
    ['the allowed host with a trailing dot', 'https://vendor.example./billing', 'its origin'],
    ['scheme-relative', '//evil.test/billing', 'absolute'],
    ['backslashes', 'https:\\\\evil.test\\billing', 'backslashes'],
    ['encoded dots leaving the prefix', 'https://vendor.example/billing/%2e%2e/admin', 'path'],
    ['an encoded slash', 'https://vendor.example/billing/..%2fadmin', 'encoded'],
    ['an encoded host', 'https://vendor%2eexample/billing', 'encoded host'],
    ['a path beside the prefix', 'https://vendor.example/billing-evil', 'path'],
    ['javascript:', 'javascript:alert(1)', 'absolute'],
    ['data:', 'data:text/html,hi', 'absolute'],
    ['relative', '/billing', 'absolute'],
  ])('when the return URL is %s, then 422 at return_url, nothing is sent to Stripe, and the attempt is audited as denied', async (_label, url, reason) => {
    const before = stripe.requests.length;
    const res = await portal(t, c.apiKey, { return_url: url });
    expectError(res, 422, 'VALIDATION_FAILED');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body.error.details).toEqual([{ path: 'return_url', message: expect.stringContaining(reason) }]);
    expect(stripe.requests.length).toBe(before);
    expect((await auditRows(t, c.id)).at(-1)).toMatchObject({ outcome: 'denied', details: expect.objectContaining({ code: 'VALIDATION_FAILED' }) });

    const control = await portal(t, c.apiKey, { return_url: 'https://vendor.example/billing/ok' });
    expect(control.status).toBe(201);
  });

  test('when BILLING_PORTAL_RETURN_URLS is unset, then every return URL is refused and the message says the setting is unset; with it set the same URL works (control)', async () => {
    const unset = await createTestApp({ STRIPE_SECRET_KEY: 'sk_test_portal', STRIPE_API_BASE: stripe.url, FORWARDER_ENABLED: 'false' });
    try {
      const u = await createCustomer(unset);
      const before = stripe.portalSessions.length;
      const res = await portal(unset, u.apiKey, { return_url: 'https://vendor.example/billing' });
      expectError(res, 422, 'VALIDATION_FAILED');
      expect(res.body.error.details).toEqual([{ path: 'return_url', message: expect.stringMatching(/BILLING_PORTAL_RETURN_URLS is unset/) }]);
      expect(stripe.portalSessions.length).toBe(before);
    } finally {
      await unset.close();
    }
    expect((await portal(t, c.apiKey, { return_url: 'https://vendor.example/billing' })).status).toBe(201);
  });
});

describe('when the portal cannot be had', () => {
  test('when Stripe is off, then 409 STRIPE_DISABLED (no-store), and with Stripe on the same request succeeds (control)', async () => {
    const off = await createTestApp({ BILLING_PORTAL_RETURN_URLS: RULES });
    try {
      const c = await createCustomer(off);
      const res = await portal(off, c.apiKey, { return_url: 'https://vendor.example/billing' });
      expectError(res, 409, 'STRIPE_DISABLED');
      expect(res.headers['cache-control']).toBe('no-store');
      expect((await auditRows(off, c.id)).at(-1)).toMatchObject({ outcome: 'failure', details: expect.objectContaining({ code: 'STRIPE_DISABLED' }) });
    } finally {
      await off.close();
    }
    const on = await createCustomer(t);
    expect((await portal(t, on.apiKey, { return_url: 'https://vendor.example/billing' })).status).toBe(201);
  });

  test('when the customer has no Stripe customer, then 409 CUSTOMER_NOT_LINKED and nothing goes to Stripe; once linked, it works (control)', async () => {
    // Its Stripe customer could not be made when it was created: it stays unlinked until first need.
    stripe.failNext(/^\/v1\/customers$/, 3, { status: 500 });
    const c = await createCustomer(t);
    expect(await stripeIdOf(t, c.id)).toBeNull();
    const before = stripe.requests.length;
    expectError(await portal(t, c.apiKey, { return_url: 'https://vendor.example/billing' }), 409, 'CUSTOMER_NOT_LINKED');
    expect(stripe.requests.length).toBe(before);

    const customer = (await t.c.customers.findById(t.db, c.id))!;
    await t.c.customers.ensureStripeCustomer({ actor: 'system', actorId: null, ip: null, requestId: null }, customer);
    expect((await portal(t, c.apiKey, { return_url: 'https://vendor.example/billing' })).status).toBe(201);
  });

  test('when Stripe answers 500 every time, then 503 with Retry-After, never a 500; when it recovers, the next request succeeds', async () => {
    const c = await createCustomer(t);
    stripe.failAlways(/billing_portal/, { status: 500 });
    const res = await portal(t, c.apiKey, { return_url: 'https://vendor.example/billing' });
    expectError(res, 503, 'SERVICE_UNAVAILABLE');
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    expect((await auditRows(t, c.id)).at(-1)).toMatchObject({ outcome: 'failure', details: expect.objectContaining({ code: 'SERVICE_UNAVAILABLE' }) });
    stripe.clearFailures();
    expect((await portal(t, c.apiKey, { return_url: 'https://vendor.example/billing' })).status).toBe(201);
  });

  test('when Stripe does not answer in time, then 503 with Retry-After', async () => {
    const c = await createCustomer(t);
    stripe.failAlways(/billing_portal/, 'stall');
    const res = await portal(t, c.apiKey, { return_url: 'https://vendor.example/billing' });
    expectError(res, 503, 'SERVICE_UNAVAILABLE');
    expect(res.headers['retry-after']).toBeDefined();
  });

  test('when Stripe refuses (a 400 it will repeat), then 502 BAD_GATEWAY, not retryable, and its text is not passed on', async () => {
    const c = await createCustomer(t);
    stripe.failNext(/billing_portal/, 1, {
      status: 400,
      type: 'invalid_request_error',
      message: 'No configuration provided and your default configuration has not been created',
    });
    const res = await portal(t, c.apiKey, { return_url: 'https://vendor.example/billing' });
    expectError(res, 502, 'BAD_GATEWAY');
    expect(res.body.error.message).not.toMatch(/default configuration/);
    expect((await portal(t, c.apiKey, { return_url: 'https://vendor.example/billing' })).status).toBe(201);
  });
});

describe('the session URL is a secret', () => {
  test('when sessions are made, then no log line and no audit row holds a session URL; the audit row holds the return URL’s origin only', async () => {
    const c = await createCustomer(t);
    const res = await portal(t, c.apiKey, { return_url: 'https://vendor.example/billing/secret-path?token=abc' });
    expect(res.status).toBe(201);
    const rows = await auditRows(t, c.id);
    expect(rows.at(-1)).toMatchObject({
      actor: 'customer',
      outcome: 'success',
      target_type: 'customer',
      details: { return_origin: 'https://vendor.example', configuration: 'bpc_vendor123' },
    });
    const audit = JSON.stringify(await t.db('audit_log').select('details'));
    const logs = t.logs.join('');
    // The access line of this very request was written.
    expect(logs).toContain(res.headers['x-request-id']);
    for (const s of stripe.portalSessions) {
      expect(logs).not.toContain(s.url);
      expect(audit).not.toContain(s.url);
      expect(logs).not.toContain(s.url.split('/').at(-1));
    }
    expect(audit).not.toContain('secret-path');
    expect(audit).not.toContain('token=abc');
  });

  test('when the route is declared, then it is no-store and its success is the declared schema', () => {
    const r = routeTable(t.c).find((x) => x.path === '/api/billing/portal-session')!;
    expect(r).toMatchObject({ method: 'post', auth: 'customer', noStore: true });
    expect(Object.keys(r.responses)).toEqual(['201']);
  });
});
