/**
 * Licenses: status and dates from each subscription state (on a fake clock), signatures checked with
 * node:crypto rather than jose, the JWKS, the default plan, and what a fetch costs.
 */
import { createPublicKey, verify } from 'node:crypto';
import request from 'supertest';
import { generateSigningKey } from '../../src/modules/licenses/signing-keys';
import { expectError } from '../helpers/envelope';
import { createCustomer, createPlan, subscribe, type CreatedCustomer } from '../helpers/factories';
import { createTestApp, type TestApp } from '../helpers/test-app';

const DAY = 86_400;
let clock = Date.now();
let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({}, { now: () => clock });
});
afterAll(() => t.close());
beforeEach(() => {
  clock = Date.now();
});

const nowSec = () => Math.floor(clock / 1000);
const at = (sec: number) => new Date(sec * 1000);

/** Verifies a compact JWS with node:crypto's Ed25519 and a key from the served JWKS: no jose involved. */
async function verifyIndependently(app: TestApp, token: string) {
  const [h, p, s] = token.split('.') as [string, string, string];
  const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
  expect(header).toEqual({ alg: 'EdDSA', kid: expect.any(String), typ: 'license+jwt' });
  const jwks = await request(app.app).get('/.well-known/jwks.json').expect(200);
  const jwk = jwks.body.keys.find((k: { kid: string }) => k.kid === header.kid);
  expect(jwk).toBeDefined();
  const key = createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x }, format: 'jwk' });
  expect(verify(null, Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url'))).toBe(true);
  // One flipped bit in the payload and it no longer verifies.
  const tampered = Buffer.from(p, 'base64url');
  tampered[0]! ^= 1;
  expect(verify(null, Buffer.from(`${h}.${tampered.toString('base64url')}`), key, Buffer.from(s, 'base64url'))).toBe(false);
  return JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
}

/** GET /api/licenses, checked: 200, the signature verifies, the payload is the claims returned. */
async function license(c: CreatedCustomer, app: TestApp = t, fingerprint?: string) {
  const res = await request(app.app)
    .get('/api/licenses')
    .query(fingerprint ? { fingerprint } : {})
    .set('X-API-Key', c.apiKey);
  if (res.status !== 200) throw new Error(`license: ${res.status} ${JSON.stringify(res.body)}`);
  expect(await verifyIndependently(app, res.body.license)).toEqual(res.body.claims);
  expect(res.body.jwks_url).toBe(app.c.config.license.jwksUrl);
  return res.body.claims;
}

const setSubscription = (id: string, cols: Record<string, unknown>) => t.db('subscriptions').where({ id }).update(cols);

describe('status and dates from the subscription', () => {
  test('when the subscription is active, then the license is active until the period end, exp iat + 7d, with plan, entitlements and usage', async () => {
    const s = await subscribe(t);
    await request(t.app)
      .post('/api/usage')
      .set('X-API-Key', s.customer.apiKey)
      .send({ metric: 'api_calls', quantity: '12.5', idempotency_key: 'l-1' })
      .expect(201);
    const claims = await license(s.customer);
    const periodEnd = Math.floor(Date.parse(s.body.current_period_end) / 1000);
    expect(claims).toEqual({
      iss: 'billing-service',
      sub: s.customerId,
      jti: expect.stringMatching(/^[0-9a-f-]{36}$/),
      iat: nowSec(),
      nbf: nowSec(),
      exp: nowSec() + 7 * DAY,
      plan: { code: s.plan, name: 'Pro' },
      // Features sorted (entitlement-rules.ts); api_calls unlimited: a quantity, but not a metered limit.
      entitlements: { features: ['audit-export', 'sso'], limits: { projects: 10, api_calls: null } },
      usage: { period_start: Math.floor(Date.parse(s.body.current_period_start) / 1000), period_end: periodEnd, quantities: { api_calls: '12.5' } },
      metered: {},
      status: 'active',
      subscription: { id: s.id, status: 'active', current_period_end: periodEnd, cancel_at_period_end: false },
      valid_until: periodEnd,
      grace_until: null,
    });
  });

  test('when the period ends before the TTL would, then exp is the period end', async () => {
    const s = await subscribe(t);
    await setSubscription(s.id, { current_period_end: at(nowSec() + 2 * DAY) });
    const claims = await license(s.customer);
    expect([claims.status, claims.valid_until, claims.exp]).toEqual(['active', nowSec() + 2 * DAY, nowSec() + 2 * DAY]);
  });

  test('when the subscription is trialing, then the license is trialing until the trial ends', async () => {
    const s = await subscribe(t, { body: { trial_days: 3 } });
    const claims = await license(s.customer);
    const end = Math.floor(Date.parse(s.body.trial_end) / 1000);
    expect([claims.status, claims.valid_until, claims.grace_until, claims.exp]).toEqual(['trialing', end, null, end]);
  });

  test.each(['past_due', 'unpaid'])(
    'when the subscription is %s, then grace from when payment started failing, capped, then expired when it runs out',
    async (status) => {
      const s = await subscribe(t);
      const since = nowSec() - 3 * DAY;
      await setSubscription(s.id, { status, payment_failing_since: at(since) });
      const graceUntil = since + 14 * DAY;

      let claims = await license(s.customer);
      expect([claims.status, claims.valid_until, claims.grace_until, claims.exp]).toEqual(['grace', null, graceUntil, nowSec() + 7 * DAY]);

      clock += 9 * DAY * 1000; // 12 days into a 14-day grace: exp stops at its end
      claims = await license(s.customer);
      expect([claims.status, claims.grace_until, claims.exp]).toEqual(['grace', graceUntil, graceUntil]);

      clock += 3 * DAY * 1000; // past it
      claims = await license(s.customer);
      expect([claims.status, claims.valid_until, claims.grace_until, claims.exp]).toEqual(['expired', null, graceUntil, nowSec() + 7 * DAY]);
      expect(claims.subscription.status).toBe(status);
    },
  );

  test.each(['canceled', 'incomplete_expired', 'incomplete', 'paused'])(
    'when the subscription is %s, then the license is expired, still signed',
    async (status) => {
      const s = await subscribe(t);
      await setSubscription(s.id, { status });
      const claims = await license(s.customer);
      expect([claims.status, claims.valid_until, claims.grace_until, claims.exp]).toEqual(['expired', null, null, nowSec() + 7 * DAY]);
    },
  );

  test('when an active Stripe subscription’s period is over (the renewal has not reached us), then grace from the period end', async () => {
    const s = await subscribe(t);
    const end = nowSec() - DAY;
    // Held by Stripe: only Stripe renews it (a local one renews itself, see subscriptions.test.ts).
    await setSubscription(s.id, { current_period_end: at(end), stripe_subscription_id: `sub_lic${s.id.replace(/-/g, '')}` });
    const claims = await license(s.customer);
    expect([claims.status, claims.grace_until, claims.valid_until]).toEqual(['grace', end + 14 * DAY, null]);
  });

  test('when a customer has several subscriptions, then paid beats failing beats ended, newest first within each', async () => {
    const c = await createCustomer(t);
    const older = await subscribe(t, { customer: c });
    const newer = await subscribe(t, { customer: c });
    await setSubscription(newer.id, { status: 'canceled' });
    expect((await license(c)).subscription.id).toBe(older.id);
    await setSubscription(older.id, { status: 'past_due', payment_failing_since: at(nowSec()) });
    expect((await license(c)).subscription.id).toBe(older.id);
    const newest = await subscribe(t, { customer: c });
    expect((await license(c)).subscription.id).toBe(newest.id);
  });

  test('when a subscription is canceled at once through the API, then the next license is expired', async () => {
    const s = await subscribe(t);
    await request(t.app)
      .delete(`/api/customers/${s.customerId}/subscriptions/${s.id}?immediately=true`)
      .set('Authorization', `Bearer ${t.adminToken}`)
      .expect(200);
    expect((await license(s.customer)).status).toBe('expired');
  });

  test('when the customer has no subscription and there is no default plan, then 404 LICENSE_NOT_FOUND', async () => {
    const c = await createCustomer(t);
    expectError(await request(t.app).get('/api/licenses').set('X-API-Key', c.apiKey), 404, 'LICENSE_NOT_FOUND');
  });
});

describe('the default plan (LICENSE_DEFAULT_PLAN)', () => {
  test('when a customer has no subscription, then it gets an open-ended active license of that plan, with this month’s usage', async () => {
    const code = await createPlan(t, { name: 'Free', entitlements: { features: [], limits: { api_calls: 1000, instances: 1 } } });
    const free = await createTestApp({ LICENSE_DEFAULT_PLAN: code }, { now: () => clock });
    try {
      const c = await createCustomer(free);
      // The plan limits instances: its licenses are issued bound only.
      await request(free.app).post('/api/licenses/activations').set('X-API-Key', c.apiKey).send({ fingerprint: 'free-host-0001' }).expect(201);
      const claims = await license(c, free, 'free-host-0001');
      const d = new Date(clock);
      expect(claims).toMatchObject({
        status: 'active',
        plan: { code, name: 'Free' },
        entitlements: { features: [], limits: { api_calls: 1000, instances: 1 } },
        usage: {
          period_start: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1) / 1000,
          period_end: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) / 1000,
          quantities: { api_calls: '0' },
        },
        subscription: null,
        valid_until: null,
        grace_until: null,
        exp: nowSec() + 7 * DAY,
        instance: 'free-host-0001',
      });
      // A subscription takes precedence over the default plan.
      const s = await subscribe(free, { customer: c });
      expect((await license(c, free)).plan.code).toBe(s.plan);
    } finally {
      await free.close();
    }
  });

  test('when the default plan does not exist, then customers without a subscription get 404 LICENSE_NOT_FOUND', async () => {
    const free = await createTestApp({ LICENSE_DEFAULT_PLAN: 'no-such-plan' });
    try {
      const c = await createCustomer(free);
      expectError(await request(free.app).get('/api/licenses').set('X-API-Key', c.apiKey), 404, 'LICENSE_NOT_FOUND');
    } finally {
      await free.close();
    }
  });
});

describe('keys and cost', () => {
  test('when the JWKS is read, then it is public, cacheable for 5 minutes, and names each key by kid', async () => {
    const res = await request(t.app).get('/.well-known/jwks.json').expect(200);
    expect(res.headers['cache-control']).toBe('public, max-age=300');
    expect(res.body.keys).toEqual([{ kty: 'OKP', crv: 'Ed25519', x: expect.any(String), kid: expect.any(String), alg: 'EdDSA', use: 'sig' }]);
    expect(JSON.stringify(res.body)).not.toContain('"d"');
  });

  test('when several keys are configured, then the first signs and all are published', async () => {
    const [next, old] = [{ ...generateSigningKey(), kid: 'next' }, generateSigningKey()];
    const two = await createTestApp({ LICENSE_SIGNING_KEYS: JSON.stringify([next, old]) });
    try {
      const jwks = await request(two.app).get('/.well-known/jwks.json').expect(200);
      expect(jwks.body.keys.map((k: { kid: string }) => k.kid)).toEqual(['next', old.kid]);
      const s = await subscribe(two);
      const res = await request(two.app).get('/api/licenses').set('X-API-Key', s.customer.apiKey).expect(200);
      expect(JSON.parse(Buffer.from(res.body.license.split('.')[0], 'base64url').toString()).kid).toBe('next');
      await verifyIndependently(two, res.body.license);
    } finally {
      await two.close();
    }
  });

  test('when a cached key fetches licenses, then no bcrypt runs and each request signs exactly once', async () => {
    const s = await subscribe(t);
    await request(t.app).get('/api/me').set('X-API-Key', s.customer.apiKey).expect(200);
    const signed = async () => (await t.c.metrics.licensesIssued.get()).values.reduce((n, v) => n + v.value, 0);
    const [bcrypt, before] = [t.bcryptCalls(), await signed()];
    for (let i = 0; i < 5; i++) await request(t.app).get('/api/licenses').set('X-API-Key', s.customer.apiKey).expect(200);
    expect([t.bcryptCalls() - bcrypt, (await signed()) - before]).toEqual([0, 5]);
  });

  test('when a license is issued, then one audit row names the customer, jti, status and fingerprint, never the token', async () => {
    const s = await subscribe(t);
    const res = await request(t.app).get('/api/licenses').set('X-API-Key', s.customer.apiKey).expect(200);
    const rows = await t.db('audit_log').where({ action: 'license.issue', target_id: res.body.claims.jti });
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ actor: 'customer', outcome: 'success', target_type: 'license' });
    expect(rows[0]!.details).toMatchObject({ customer_id: s.customerId, jti: res.body.claims.jti, status: 'active', fingerprint: null });
    expect(JSON.stringify(rows[0])).not.toContain(res.body.license.split('.')[2]);
  });

  test('when Prometheus scrapes, then licenses issued by status and active activations are there', async () => {
    const s = await subscribe(t);
    await request(t.app).get('/api/licenses').set('X-API-Key', s.customer.apiKey).expect(200);
    const text = (await request(t.app).get('/metrics').set('Authorization', `Bearer ${t.adminToken}`).expect(200)).text;
    expect(text).toMatch(/^licenses_issued_total\{status="active"\} [1-9]\d*$/m);
    expect(text).toMatch(/^license_activations_active \d+$/m);
  });
});

describe('GET /api/customers/:id/license (what the console shows of a license)', () => {
  test('when a customer is subscribed, then the claims a license issued now would carry, and its instances; nothing is issued', async () => {
    const { customer, plan } = await subscribe(t);
    const admin = { Authorization: `Bearer ${t.adminToken}` };
    const issuedBefore = await t.db('audit_log').where({ action: 'license.issue' }).whereRaw("details->>'customer_id' = ?", [customer.id]).count({ n: '*' });
    const res = await request(t.app).get(`/api/customers/${customer.id}/license`).set(admin);
    expect(res.status).toBe(200);
    expect(res.body.claims).toMatchObject({ sub: customer.id, status: 'active', plan: { code: plan } });
    expect(res.body.claims.jti).toBeUndefined();
    expect(res.body.instances).toEqual({ limit: null, held: 0 });
    // The same claims the customer's own license carries (its id, times and instance aside).
    const own = await request(t.app).get('/api/licenses').set('X-API-Key', customer.apiKey);
    expect(own.status).toBe(200);
    const { jti: _jti, iat: _iat, nbf: _nbf, exp: _exp, ...ownRest } = own.body.claims;
    const { iat: _i, nbf: _n, exp: _e, ...previewRest } = res.body.claims;
    expect(previewRest).toEqual(ownRest);
    // Nothing issued by the preview: only the customer's own fetch is in the audit log.
    expect(await t.db('audit_log').where({ action: 'license.issue' }).whereRaw("details->>'customer_id' = ?", [customer.id]).count({ n: '*' })).toEqual([
      { n: String(Number((issuedBefore[0] as { n: string }).n) + 1) },
    ]);
  });

  test('when the customer has no subscription, then 404 LICENSE_NOT_FOUND; an unknown customer, 404 NOT_FOUND', async () => {
    const c = await createCustomer(t);
    const admin = { Authorization: `Bearer ${t.adminToken}` };
    expectError(await request(t.app).get(`/api/customers/${c.id}/license`).set(admin), 404, 'LICENSE_NOT_FOUND');
    expectError(await request(t.app).get('/api/customers/01900000-0000-7000-8000-000000000000/license').set(admin), 404, 'NOT_FOUND');
  });
});
