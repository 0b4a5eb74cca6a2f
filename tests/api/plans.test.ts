import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { uuidv7 } from '../../src/lib/ids';
import { SEATS_REMOVED } from '../../src/modules/plans/plan-types';
import { expectError } from '../helpers/envelope';
import { createCustomer, createPlan, planCode } from '../helpers/factories';
import { createTestApp, TestApp } from '../helpers/test-app';

let t: TestApp;
let admin: Record<string, string>;
beforeAll(async () => {
  t = await createTestApp({ USAGE_METRICS: 'api_calls,storage_gb' });
  admin = { Authorization: `Bearer ${t.adminToken}` };
});
afterAll(() => t.close());

const entitlements = { features: ['sso'], limits: { projects: 3, api_calls: null, instances: 2 } };

test('when an admin creates a plan, then it is stored with its entitlements and prices', async () => {
  const code = planCode();
  const res = await request(t.app)
    .post('/api/plans')
    .set(admin)
    .send({ code, name: 'Team', entitlements, stripe_price_id: 'price_123abc', metered_prices: { api_calls: 'price_meter1' } });
  expect(res.status).toBe(201);
  expect(res.body.plan).toMatchObject({
    code,
    name: 'Team',
    entitlements,
    stripe_price_id: 'price_123abc',
    metered_prices: { api_calls: 'price_meter1' },
    status: 'active',
  });
  const row = (await t.db('plans').where({ code }).first())!;
  expect(row.entitlements).toEqual(entitlements);
  expect((await request(t.app).get(`/api/plans/${code}`).set(admin)).body.plan.id).toBe(row.id);
  expect((await request(t.app).get('/api/plans').set(admin)).body.data.map((p: { code: string }) => p.code)).toContain(code);
});

test('when a plan still sends entitlements.seats, then 422 naming limits.instances, on create and on change, and nothing is written', async () => {
  const code = planCode();
  const create = await request(t.app)
    .post('/api/plans')
    .set(admin)
    .send({ code, name: 'Seats', entitlements: { ...entitlements, seats: 5 } });
  expectError(create, 422, 'VALIDATION_FAILED');
  expect(create.body.error.details).toEqual([{ path: 'entitlements.seats', message: SEATS_REMOVED }]);
  expect(SEATS_REMOVED).toMatch(/limits\.instances/);
  expect(await t.db('plans').where({ code })).toHaveLength(0);

  const existing = await createPlan(t);
  const before = (await t.db('plans').where({ code: existing }).first())!;
  const change = await request(t.app)
    .patch(`/api/plans/${existing}`)
    .set(admin)
    .send({ entitlements: { features: [], limits: {}, seats: null } });
  expectError(change, 422, 'VALIDATION_FAILED');
  expect(change.body.error.details).toEqual([{ path: 'entitlements.seats', message: SEATS_REMOVED }]);
  expect((await t.db('plans').where({ code: existing }).first())!.entitlements).toEqual(before.entitlements);

  // Control: the same plan with the instance limit where it belongs.
  const ok = await request(t.app)
    .post('/api/plans')
    .set(admin)
    .send({ code, name: 'Seats', entitlements: { ...entitlements, limits: { instances: 5 } } });
  expect(ok.status).toBe(201);
  expect(ok.body.plan.entitlements).toEqual({ features: ['sso'], limits: { instances: 5 } });
});

test('when the code is taken, then 409 PLAN_CODE_TAKEN', async () => {
  const code = await createPlan(t);
  expectError(await request(t.app).post('/api/plans').set(admin).send({ code, name: 'X', entitlements }), 409, 'PLAN_CODE_TAKEN');
});

test.each([
  ['an unknown entitlement field', { entitlements: { ...entitlements, extra: 1 } }],
  ['a negative limit', { entitlements: { ...entitlements, limits: { projects: -1 } } }],
  ['a fractional limit', { entitlements: { ...entitlements, limits: { projects: 1.5 } } }],
  ['a repeated feature', { entitlements: { ...entitlements, features: ['sso', 'sso'] } }],
  ['a feature with spaces', { entitlements: { ...entitlements, features: ['single sign on'] } }],
  ['no entitlements', { entitlements: undefined }],
  ['a bad price id', { stripe_price_id: 'prod_123' }],
  ['a metered price for an unknown metric', { metered_prices: { bananas: 'price_1' } }],
  ['an uppercase code', { code: 'PRO' }],
  ['an unknown field', { public: true }],
])('when the plan has %s, then 422 and no row', async (_label, change) => {
  const code = planCode();
  const body: Record<string, unknown> = { code, name: 'X', entitlements, ...change };
  for (const [k, v] of Object.entries(body)) if (v === undefined) delete body[k];
  expectError(await request(t.app).post('/api/plans').set(admin).send(body), 422, 'VALIDATION_FAILED');
  expect(await t.db('plans').where({ code: String(body.code) })).toHaveLength(0);
});

test('when a plan is changed or archived, then the change is stored and audited', async () => {
  const code = await createPlan(t);
  const res = await request(t.app).patch(`/api/plans/${code}`).set(admin).send({ name: 'Pro 2', status: 'archived' });
  expect(res.status).toBe(200);
  expect(res.body.plan).toMatchObject({ name: 'Pro 2', status: 'archived' });
  const audit = await t.db('audit_log').where({ request_id: res.headers['x-request-id'] }).first();
  expect(audit).toMatchObject({ action: 'plan.update', outcome: 'success', details: { code, fields: ['name', 'status'] } });
  expect((await request(t.app).get('/api/plans').query({ status: 'archived' }).set(admin)).body.data.map((p: { code: string }) => p.code)).toContain(code);
  expectError(await request(t.app).patch(`/api/plans/${code}`).set(admin).send({}), 422, 'VALIDATION_FAILED');
  expectError(await request(t.app).patch('/api/plans/nope-nope').set(admin).send({ name: 'x' }), 404, 'NOT_FOUND');
});

test('when a plan no subscription uses is deleted, then it is gone; one in use is 409 and stays', async () => {
  const unused = await createPlan(t);
  expect((await request(t.app).delete(`/api/plans/${unused}`).set(admin)).status).toBe(204);
  expect(await t.db('plans').where({ code: unused })).toHaveLength(0);

  const used = await createPlan(t);
  const c = await createCustomer(t);
  const plan = (await t.db('plans').where({ code: used }).first())!;
  await t
    .db('subscriptions')
    .insert({ id: uuidv7(), customer_id: c.id, plan_id: plan.id, status: 'canceled', stripe_subscription_id: `sub_${randomBytes(6).toString('hex')}` });
  expectError(await request(t.app).delete(`/api/plans/${used}`).set(admin), 409, 'PLAN_IN_USE');
  expect(await t.db('plans').where({ code: used })).toHaveLength(1);
});

describe('when entitlements or prices carry prototype names as keys (sent as raw JSON, which keeps "__proto__")', () => {
  const cases: [string, string, string][] = [
    ['a "__proto__" limit', '"limits": {"projects": 3, "__proto__": 5}', 'entitlements.limits.__proto__'],
    ['a "__proto__" limit holding an object', '"limits": {"__proto__": {"isAdmin": true}}', 'entitlements.limits.__proto__'],
    ['a "constructor" limit', '"limits": {"constructor": 1}', 'entitlements.limits.constructor'],
    ['a "prototype" limit', '"limits": {"prototype": 1}', 'entitlements.limits.prototype'],
    ['a "constructor" feature', '"features": ["sso", "constructor"], "limits": {}', 'entitlements.features.1'],
    ['a "prototype" feature', '"features": ["prototype"], "limits": {}', 'entitlements.features.0'],
    ['a "__proto__" feature', '"features": ["__proto__"], "limits": {}', 'entitlements.features.0'],
  ];
  const withDefaults = (inner: string) => `{${inner.includes('"features"') ? '' : '"features": [], '}${inner}}`;

  test.each(cases)('then creating a plan with %s is a 422 naming it, and no plan is stored', async (_label, inner, path) => {
    const code = planCode();
    const res = await request(t.app)
      .post('/api/plans')
      .set(admin)
      .set('Content-Type', 'application/json')
      .send(`{"code": "${code}", "name": "Proto", "entitlements": ${withDefaults(inner)}}`);
    expectError(res, 422, 'VALIDATION_FAILED');
    expect(res.body.error.details).toContainEqual(
      expect.objectContaining({ path, message: expect.stringMatching(/"(__proto__|constructor|prototype)" is a reserved name/) }),
    );
    expect(await t.db('plans').where({ code })).toHaveLength(0);
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
  });

  test.each(cases)('then changing a plan to %s is a 422, and the plan is unchanged', async (_label, inner, path) => {
    const code = await createPlan(t);
    const before = (await t.db('plans').where({ code }).first())!.entitlements;
    const res = await request(t.app)
      .patch(`/api/plans/${code}`)
      .set(admin)
      .set('Content-Type', 'application/json')
      .send(`{"entitlements": ${withDefaults(inner)}}`);
    expectError(res, 422, 'VALIDATION_FAILED');
    expect(res.body.error.details.map((d: { path: string }) => d.path)).toContain(path);
    expect((await t.db('plans').where({ code }).first())!.entitlements).toEqual(before);
  });

  test('then metered prices keyed "__proto__" are a 422, not silently dropped', async () => {
    const code = planCode();
    const res = await request(t.app)
      .post('/api/plans')
      .set(admin)
      .set('Content-Type', 'application/json')
      .send(`{"code": "${code}", "name": "Proto", "entitlements": {"features": [], "limits": {}}, "metered_prices": {"__proto__": "price_1"}}`);
    expectError(res, 422, 'VALIDATION_FAILED');
    expect(res.body.error.details).toContainEqual({ path: 'metered_prices.__proto__', message: '"__proto__" is a reserved name' });
    expect(await t.db('plans').where({ code })).toHaveLength(0);
  });
});

describe('local_pricing: what a plan costs for the estimate with Stripe off', () => {
  const pricing = { currency: 'usd', unit_amount: 4900, metered: { api_calls: '0.05', storage_gb: '12.5' } };

  test('when a plan is created with local pricing, then it is stored and answered; a plan without answers null', async () => {
    const code = planCode();
    const res = await request(t.app).post('/api/plans').set(admin).send({ code, name: 'Priced', entitlements, local_pricing: pricing });
    expect(res.status).toBe(201);
    expect(res.body.plan.local_pricing).toEqual(pricing);
    expect((await t.db('plans').where({ code }).first())!.local_pricing).toEqual(pricing);
    expect((await request(t.app).get(`/api/plans/${code}`).set(admin)).body.plan.local_pricing).toEqual(pricing);
    expect(
      (
        await request(t.app)
          .get(`/api/plans/${await createPlan(t)}`)
          .set(admin)
      ).body.plan.local_pricing,
    ).toBeNull();
  });

  test('when a plan’s local pricing is changed, then replaced; null clears it; a change of other fields keeps it', async () => {
    const code = await createPlan(t, { local_pricing: pricing });
    const changed = { currency: 'eur', unit_amount: 1000, metered: { api_calls: '0.001' } };
    expect((await request(t.app).patch(`/api/plans/${code}`).set(admin).send({ local_pricing: changed })).body.plan.local_pricing).toEqual(changed);
    expect((await request(t.app).patch(`/api/plans/${code}`).set(admin).send({ name: 'Renamed' })).body.plan.local_pricing).toEqual(changed);
    const cleared = await request(t.app).patch(`/api/plans/${code}`).set(admin).send({ local_pricing: null });
    expect(cleared.status).toBe(200);
    expect(cleared.body.plan.local_pricing).toBeNull();
    expect((await t.db('plans').where({ code }).first())!.local_pricing).toBeNull();
    const audit = await t.db('audit_log').where({ action: 'plan.update', outcome: 'success' }).orderBy('id', 'desc').first();
    expect(audit!.details).toMatchObject({ code, fields: ['localPricing'] });
  });

  test.each([
    ['a metric that is not a usage metric', { ...pricing, metered: { projects: '1' } }, 'local_pricing.metered.projects', /not one \(api_calls, storage_gb\)/],
    ['a float unit price', { ...pricing, metered: { api_calls: 0.05 } }, 'local_pricing.metered.api_calls', /./],
    ['a unit price with 13 decimals', { ...pricing, metered: { api_calls: '0.0000000000001' } }, 'local_pricing.metered.api_calls', /decimal/],
    ['a negative unit price', { ...pricing, metered: { api_calls: '-1' } }, 'local_pricing.metered.api_calls', /decimal/],
    ['a fractional base amount', { ...pricing, unit_amount: 49.5 }, 'local_pricing.unit_amount', /./],
    ['an upper case currency', { ...pricing, currency: 'USD' }, 'local_pricing.currency', /lowercase/],
    ['no currency', { unit_amount: 1, metered: {} }, 'local_pricing.currency', /./],
  ])('when local pricing has %s, then 422 naming it, on create and on change, and nothing is written', async (_label, bad, path, message) => {
    const code = planCode();
    const created = await request(t.app).post('/api/plans').set(admin).send({ code, name: 'Bad', entitlements, local_pricing: bad });
    expectError(created, 422, 'VALIDATION_FAILED');
    expect(created.body.error.details).toContainEqual({ path, message: expect.stringMatching(message) });
    expect(await t.db('plans').where({ code })).toHaveLength(0);

    const existing = await createPlan(t, { local_pricing: pricing });
    const changed = await request(t.app).patch(`/api/plans/${existing}`).set(admin).send({ local_pricing: bad });
    expectError(changed, 422, 'VALIDATION_FAILED');
    expect(changed.body.error.details.map((d: { path: string }) => d.path)).toContain(path);
    expect((await t.db('plans').where({ code: existing }).first())!.local_pricing).toEqual(pricing);
    // Control: the same plan takes a valid one.
    expect((await request(t.app).patch(`/api/plans/${existing}`).set(admin).send({ local_pricing: pricing })).status).toBe(200);
  });

  test('when local pricing names "__proto__" (raw JSON), then 422 at local_pricing.metered.__proto__, not silently dropped', async () => {
    const code = planCode();
    const res = await request(t.app)
      .post('/api/plans')
      .set(admin)
      .set('Content-Type', 'application/json')
      .send(
        `{"code": "${code}", "name": "Proto", "entitlements": {"features": [], "limits": {}}, "local_pricing": {"currency": "usd", "unit_amount": 1, "metered": {"__proto__": "1"}}}`,
      );
    expectError(res, 422, 'VALIDATION_FAILED');
    expect(res.body.error.details.map((d: { path: string }) => d.path)).toContain('local_pricing.metered.__proto__');
    expect(await t.db('plans').where({ code })).toHaveLength(0);
  });
});
