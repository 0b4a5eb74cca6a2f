/**
 * Licenses carry the customer's deal: the plan's entitlements with the overrides that apply (features
 * added and removed, limits raised, lowered and unlimited, the instance limit), the activation limit
 * those give, the metered figures and states as of issue, and an exp never past the end of the
 * overrides. Overrides are stored with the repository (the admin routes are another module's).
 */
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import type { OverrideTerms } from '../../src/modules/entitlements/entitlement-rules';
import { createOverridesRepository } from '../../src/modules/entitlements/overrides-repository';
import { expectError } from '../helpers/envelope';
import { createCustomer, createPlan, subscribe, type CreatedCustomer } from '../helpers/factories';
import { createTestApp, type TestApp } from '../helpers/test-app';

const DAY = 86_400;
const HOUR_MS = 3_600_000;
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
const fp = () => `host-${randomBytes(6).toString('hex')}`;
const admin = () => ({ Authorization: `Bearer ${t.adminToken}` });

/** The one place overrides are set up here (until the admin API lands, then it can go through PUT /api/customers/:id/entitlements). */
const overridesRepo = createOverridesRepository();
async function setOverrides(customerId: string, terms: Partial<OverrideTerms>, expiresAt: Date | null = null): Promise<void> {
  const full: OverrideTerms = { features: { add: [], remove: [] }, limits: {}, overage: {}, ...terms };
  await overridesRepo.upsert(t.db, customerId, { terms: full, note: 'test deal', expiresAt });
}
const overrideRow = (customerId: string) => t.db('customer_entitlement_overrides').where({ customer_id: customerId }).first();

/** A customer subscribed to a new plan with these entitlements. */
async function dealCustomer(entitlements: Record<string, unknown>): Promise<CreatedCustomer> {
  const plan = await createPlan(t, { entitlements });
  return (await subscribe(t, { plan })).customer;
}

async function license(c: CreatedCustomer, fingerprint?: string) {
  const res = await request(t.app)
    .get('/api/licenses')
    .query(fingerprint ? { fingerprint } : {})
    .set('X-API-Key', c.apiKey);
  if (res.status !== 200) throw new Error(`license: ${res.status} ${JSON.stringify(res.body)}`);
  // The payload signed is the claims answered.
  expect(JSON.parse(Buffer.from(res.body.license.split('.')[1], 'base64url').toString('utf8'))).toEqual(res.body.claims);
  return res.body.claims;
}

const activate = (c: CreatedCustomer, fingerprint: string) => request(t.app).post('/api/licenses/activations').set('X-API-Key', c.apiKey).send({ fingerprint });
const activationCount = async (customerId: string) => Number((await t.db('license_activations').where({ customer_id: customerId }).count({ n: '*' }))[0]!.n);

async function report(c: CreatedCustomer, quantity: string) {
  await request(t.app)
    .post('/api/usage')
    .set('X-API-Key', c.apiKey)
    .send({ metric: 'api_calls', quantity, idempotency_key: `deal-${randomBytes(6).toString('hex')}` })
    .expect(201);
}

describe('the effective entitlements in the license', () => {
  const plan = { features: ['sso', 'audit-export'], limits: { projects: 10, storage_gb: 50 } };

  test('when there are no overrides, then the license carries the plan’s entitlements', async () => {
    const c = await dealCustomer(plan);
    expect((await license(c)).entitlements).toEqual({ features: ['audit-export', 'sso'], limits: { projects: 10, storage_gb: 50 } });
  });

  test.each([
    ['a feature added', { features: { add: ['beta-reports'], remove: [] } }, { features: ['audit-export', 'beta-reports', 'sso'], limits: plan.limits }],
    ['a feature removed', { features: { add: [], remove: ['sso'] } }, { features: ['audit-export'], limits: plan.limits }],
    ['a limit raised', { limits: { projects: 40 } }, { features: ['audit-export', 'sso'], limits: { projects: 40, storage_gb: 50 } }],
    ['a limit lowered', { limits: { projects: 3 } }, { features: ['audit-export', 'sso'], limits: { projects: 3, storage_gb: 50 } }],
    ['a limit unlimited', { limits: { storage_gb: null } }, { features: ['audit-export', 'sso'], limits: { projects: 10, storage_gb: null } }],
    ['a limit the plan lacks', { limits: { seats_ui: 5 } }, { features: ['audit-export', 'sso'], limits: { projects: 10, storage_gb: 50, seats_ui: 5 } }],
  ])('when the overrides give %s, then the license carries the effective entitlements', async (_what, terms, effective) => {
    const c = await dealCustomer(plan);
    await setOverrides(c.id, terms);
    expect((await license(c)).entitlements).toEqual(effective);
  });

  test('when the overrides have expired, then the license carries the plan again, and nothing was written to stop them', async () => {
    const c = await dealCustomer(plan);
    await setOverrides(c.id, { features: { add: ['beta-reports'], remove: ['sso'] }, limits: { projects: 40 } }, new Date(clock + HOUR_MS));
    expect((await license(c)).entitlements).toEqual({ features: ['audit-export', 'beta-reports'], limits: { projects: 40, storage_gb: 50 } });
    const before = await overrideRow(c.id);
    clock += 2 * HOUR_MS;
    expect((await license(c)).entitlements).toEqual({ features: ['audit-export', 'sso'], limits: { projects: 10, storage_gb: 50 } });
    expect(await overrideRow(c.id)).toEqual(before);
  });

  test('when a customer has overrides but no subscription (and no default plan), then still 404 LICENSE_NOT_FOUND', async () => {
    const c = await createCustomer(t);
    await setOverrides(c.id, { features: { add: ['sso'], remove: [] }, instances: 5 });
    expectError(await request(t.app).get('/api/licenses').set('X-API-Key', c.apiKey), 404, 'LICENSE_NOT_FOUND');
  });
});

describe('the instance limit is the effective one', () => {
  const tenInstances = { features: [], limits: { instances: 10 } };

  /** Ten instances activated (the plan's limit), each answered 201. */
  async function tenActive(c: CreatedCustomer): Promise<void> {
    for (let i = 0; i < 10; i++) expect((await activate(c, fp())).status).toBe(201);
  }

  test('when the plan allows 10 and there is no override, then the 11th instance is refused (control)', async () => {
    const c = await dealCustomer(tenInstances);
    await tenActive(c);
    const res = await activate(c, fp());
    expectError(res, 409, 'INSTANCE_LIMIT_REACHED');
    expect(res.body.error.details.limit).toBe(10);
  });

  test('when an override raises instances to 11, then the 11th instance activates, the 12th is refused, and the license says 11', async () => {
    const c = await dealCustomer(tenInstances);
    await setOverrides(c.id, { instances: 11 });
    await tenActive(c);
    const eleventh = fp();
    expect((await activate(c, eleventh)).status).toBe(201);
    const refused = await activate(c, fp());
    expectError(refused, 409, 'INSTANCE_LIMIT_REACHED');
    expect(refused.body.error.details.limit).toBe(11);
    expect((await license(c, eleventh)).entitlements.limits.instances).toBe(11);
    expect(await activationCount(c.id)).toBe(11);
  });

  test('when the raising override has expired, then the 11th instance is refused against the plan’s 10, with no write', async () => {
    const c = await dealCustomer(tenInstances);
    await setOverrides(c.id, { instances: 11 }, new Date(clock + HOUR_MS));
    await tenActive(c);
    const before = await overrideRow(c.id);
    clock += 2 * HOUR_MS;
    const f = fp();
    const res = await activate(c, f);
    expectError(res, 409, 'INSTANCE_LIMIT_REACHED');
    expect(res.body.error.details.limit).toBe(10);
    expect(await activationCount(c.id)).toBe(10);
    expect(await t.db('license_activations').where({ customer_id: c.id, fingerprint: f }).first()).toBeUndefined();
    expect(await overrideRow(c.id)).toEqual(before);
  });

  test('when an override lowers instances to 2, then the 3rd instance is refused though the plan allows 10', async () => {
    const c = await dealCustomer(tenInstances);
    await setOverrides(c.id, { instances: 2 });
    const [a, b] = [fp(), fp()];
    expect((await activate(c, a)).status).toBe(201);
    expect((await activate(c, b)).status).toBe(201);
    const res = await activate(c, fp());
    expectError(res, 409, 'INSTANCE_LIMIT_REACHED');
    expect(res.body.error.details.limit).toBe(2);
    expect((await license(c, a)).entitlements.limits.instances).toBe(2);
  });

  test('when an override unlimits instances, then the 11th activates and an unbound license is issued; the plan alone requires binding (control)', async () => {
    const limited = await dealCustomer(tenInstances);
    expectError(await request(t.app).get('/api/licenses').set('X-API-Key', limited.apiKey), 422, 'VALIDATION_FAILED');
    const c = await dealCustomer(tenInstances);
    await setOverrides(c.id, { instances: null });
    await tenActive(c);
    expect((await activate(c, fp())).status).toBe(201);
    const claims = await license(c);
    expect(claims.entitlements.limits.instances).toBeNull();
    expect(claims.instance).toBeUndefined();
  });

  test('when an admin issues an offline license, then the raised limit lets it take the 11th seat; once the override ends, the next is refused', async () => {
    const c = await dealCustomer(tenInstances);
    await setOverrides(c.id, { instances: 11 }, new Date(clock + 2 * HOUR_MS));
    await tenActive(c);
    const offline = (fingerprint: string) => request(t.app).post(`/api/customers/${c.id}/licenses`).set(admin()).send({ fingerprint, ttl: '1h' });
    const res = await offline(fp());
    expect(res.status).toBe(201);
    expect(res.body.claims.entitlements.limits.instances).toBe(11);
    // Its license (and seat) over, the override over: ten seats held against the plan's ten.
    clock += 3 * HOUR_MS;
    const refused = await offline(fp());
    expectError(refused, 409, 'INSTANCE_LIMIT_REACHED');
    expect(refused.body.error.details.limit).toBe(10);
  });
});

describe('the metered claim', () => {
  /** A customer whose plan allows 100 api_calls a period with this policy (and thresholds), having used `used`. */
  async function meteredCustomer(overage: unknown, used: string, thresholds?: number[]): Promise<CreatedCustomer> {
    const c = await dealCustomer({
      features: [],
      limits: { api_calls: 100, projects: 5 },
      ...(overage !== undefined ? { overage: { api_calls: overage } } : {}),
      ...(thresholds ? { thresholds } : {}),
    });
    if (used !== '0') await report(c, used);
    return c;
  }

  test.each([
    ['block', '10', { percent: 10, thresholds_crossed: [], blocks_at: '100', state: 'ok' }],
    ['block', '85.5', { percent: 85.5, thresholds_crossed: [80], blocks_at: '100', state: 'warn' }],
    ['block', '100', { percent: 100, thresholds_crossed: [80, 100], blocks_at: '100', state: 'blocked' }],
    [1.25, '110', { percent: 110, thresholds_crossed: [80, 100], blocks_at: '125', state: 'over_tolerated' }],
    [1.25, '125', { percent: 125, thresholds_crossed: [80, 100], blocks_at: '125', state: 'blocked' }],
    ['allow', '300', { percent: 300, thresholds_crossed: [80, 100], blocks_at: null, state: 'over_tolerated' }],
  ])('when the policy is %s and %s of 100 are used, then the license says so per metric', async (overage, used, expected) => {
    const c = await meteredCustomer(overage, used);
    const claims = await license(c);
    expect(claims.metered).toEqual({ api_calls: { allowance: 100, used, thresholds: [80, 100], overage, ...expected } });
    // Only the allowance is metered: a limit that names no metric is not.
    expect(claims.usage.quantities).toEqual({ api_calls: used });
  });

  test('when no policy is set, then the allowance is block; a metric without a limit, or an unlimited one, is not metered', async () => {
    expect((await license(await meteredCustomer(undefined, '0'))).metered).toEqual({
      api_calls: { allowance: 100, used: '0', percent: 0, thresholds: [80, 100], thresholds_crossed: [], overage: 'block', blocks_at: '100', state: 'ok' },
    });
    const unlimited = await dealCustomer({ features: [], limits: { api_calls: null } });
    await report(unlimited, '7');
    expect(await license(unlimited)).toMatchObject({ metered: {}, usage: { quantities: { api_calls: '7' } } });
    expect(await license(await dealCustomer({ features: [], limits: {} }))).toMatchObject({ metered: {}, usage: { quantities: {} } });
  });

  test('when overrides change the allowance, the policy and the thresholds, then the figures follow while they apply, and the plan’s after', async () => {
    const c = await meteredCustomer('block', '150', [90]);
    await setOverrides(c.id, { limits: { api_calls: 200 }, overage: { api_calls: 1.5 }, thresholds: [50, 75] }, new Date(clock + HOUR_MS));
    expect((await license(c)).metered.api_calls).toEqual({
      allowance: 200,
      used: '150',
      percent: 75,
      thresholds: [50, 75],
      thresholds_crossed: [50, 75],
      overage: 1.5,
      blocks_at: '300',
      state: 'warn',
    });
    clock += 2 * HOUR_MS;
    expect((await license(c)).metered.api_calls).toEqual({
      allowance: 100,
      used: '150',
      percent: 150,
      thresholds: [90],
      thresholds_crossed: [90],
      overage: 'block',
      blocks_at: '100',
      state: 'blocked',
    });
  });

  test('when an override unlimits a metered limit, then it is no longer metered', async () => {
    const c = await meteredCustomer('block', '120');
    await setOverrides(c.id, { limits: { api_calls: null } });
    expect(await license(c)).toMatchObject({ metered: {}, entitlements: { limits: { api_calls: null } }, usage: { quantities: { api_calls: '120' } } });
  });

  test('when the period started mid-day, then that whole day counts (the daily totals), and usage before it does not', async () => {
    const s = await subscribe(t, { plan: await createPlan(t, { entitlements: { features: [], limits: { api_calls: 100 } } }) });
    const dayStart = Math.floor(clock / (DAY * 1000)) * DAY * 1000;
    // The period starts at noon today (or the start of today when it is not yet noon: still mid-day of no other day).
    const start = new Date(Math.min(clock - 1000, dayStart + 12 * HOUR_MS));
    await t.db('subscriptions').where({ id: s.id }).update({ current_period_start: start });
    const at = (ms: number) => new Date(ms).toISOString();
    const send = (quantity: string, occurred: number) =>
      request(t.app)
        .post('/api/usage')
        .set('X-API-Key', s.customer.apiKey)
        .send({ metric: 'api_calls', quantity, occurred_at: at(occurred), idempotency_key: `mid-${randomBytes(6).toString('hex')}` })
        .expect(201);
    await send('3', dayStart); // the period's first day, before the period started: counted (whole days)
    await send('4', clock); // now
    await send('50', dayStart - DAY * 1000); // yesterday: another period's
    const claims = await license(s.customer);
    expect(claims.usage).toMatchObject({ period_start: Math.floor(start.getTime() / 1000), quantities: { api_calls: '7' } });
    expect(claims.metered.api_calls).toMatchObject({ used: '7', state: 'ok' });
  });
});

describe('exp never outlives the overrides', () => {
  test('when the overrides end before iat + TTL, then exp is their end; after it, a license of the plan alone with the full TTL', async () => {
    const c = await dealCustomer({ features: [], limits: { projects: 10 } });
    const end = new Date(clock + 2 * DAY * 1000 + 1500);
    await setOverrides(c.id, { limits: { projects: 40 } }, end);
    let claims = await license(c);
    expect([claims.exp, claims.entitlements.limits.projects]).toEqual([Math.floor(end.getTime() / 1000), 40]);
    clock = end.getTime();
    claims = await license(c);
    expect([claims.exp, claims.entitlements.limits.projects]).toEqual([nowSec() + 7 * DAY, 10]);
  });

  test('when the overrides end after iat + TTL, or never, then exp is iat + TTL (control)', async () => {
    const later = await dealCustomer({ features: [], limits: { projects: 10 } });
    await setOverrides(later.id, { limits: { projects: 40 } }, new Date(clock + 30 * DAY * 1000));
    expect((await license(later)).exp).toBe(nowSec() + 7 * DAY);
    const open = await dealCustomer({ features: [], limits: { projects: 10 } });
    await setOverrides(open.id, { limits: { projects: 40 } });
    expect((await license(open)).exp).toBe(nowSec() + 7 * DAY);
  });

  test('when an offline license is issued under overrides that end first, then its exp and its seat end with them', async () => {
    const c = await dealCustomer({ features: [], limits: { instances: 1 } });
    const end = new Date(clock + 10 * DAY * 1000);
    await setOverrides(c.id, { instances: 2 }, end);
    const f = fp();
    const res = await request(t.app).post(`/api/customers/${c.id}/licenses`).set(admin()).send({ fingerprint: f, ttl: '365d' });
    expect(res.status).toBe(201);
    expect(res.body.claims.exp).toBe(Math.floor(end.getTime() / 1000));
    const row = await t.db('license_activations').where({ customer_id: c.id, fingerprint: f }).first();
    expect(row!.expires_at!.getTime()).toBe(Math.floor(end.getTime() / 1000) * 1000);
  });
});
