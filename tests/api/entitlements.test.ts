/**
 * A customer's own deal through the admin API: overrides on top of its plan, what is effective for
 * each combination, the end of overrides (they stop applying by themselves, with no write; the job
 * only announces it, once), the audit rows and events of each change, and every refusal (a clear 422
 * naming the field, nothing written, and the same request made right succeeds).
 */
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { expectError } from '../helpers/envelope';
import { eventsOf } from '../helpers/event-faults';
import { createCustomer, createPlan, deleteCustomer, subscribe, type CreatedCustomer } from '../helpers/factories';
import { createTestApp, type TestApp } from '../helpers/test-app';

const ENV = { USAGE_METRICS: 'api_calls,storage_gb' };
let clock = Date.now();
let t: TestApp;
let admin: Record<string, string>;
beforeAll(async () => {
  t = await createTestApp(ENV, { now: () => clock });
  admin = { Authorization: `Bearer ${t.adminToken}` };
});
afterAll(() => t.close());

const HOUR = 3_600_000;
const PLAN = { features: ['sso', 'audit-export'], limits: { projects: 10, api_calls: 1000, storage_gb: 100, instances: 5 } };

/** A customer subscribed to a plan of its own with these entitlements. */
async function dealCustomer(entitlements: Record<string, unknown> = PLAN): Promise<CreatedCustomer & { plan: string }> {
  const plan = await createPlan(t, { entitlements });
  const s = await subscribe(t, { plan });
  return { ...s.customer, plan };
}

const path = (id: string) => `/api/customers/${id}/entitlements`;
const get = (id: string) => request(t.app).get(path(id)).set(admin);
const put = (id: string, body: object) => request(t.app).put(path(id)).set(admin).send(body);
const clear = (id: string) => request(t.app).delete(path(id)).set(admin);
const row = (id: string) => t.db('customer_entitlement_overrides').where({ customer_id: id }).first();
const effective = async (id: string) => (await get(id).expect(200)).body.effective;
const updates = (id: string) => eventsOf(t.db, id, 'customer.entitlements_updated');

async function report(c: CreatedCustomer, metric: string, quantity: number) {
  const res = await request(t.app)
    .post('/api/usage')
    .set('X-API-Key', c.apiKey)
    .send({ metric, quantity, occurred_at: new Date(clock).toISOString(), idempotency_key: `e-${randomBytes(6).toString('hex')}` });
  expect(res.status).toBe(201);
}

describe('effective entitlements', () => {
  test('when a customer has no overrides, then its deal is its plan: the plan’s features and limits, block on each allowance, thresholds 80 and 100, the subscription’s period', async () => {
    const c = await dealCustomer();
    await report(c, 'api_calls', 250);
    const res = await get(c.id);
    expect(res.status).toBe(200);
    const sub = (await t.db('subscriptions').where({ customer_id: c.id }).first())!;
    expect(res.body).toEqual({
      plan: { code: c.plan, name: 'Pro', entitlements: PLAN },
      overrides: null,
      effective: {
        features: ['audit-export', 'sso'],
        limits: PLAN.limits,
        overage: { api_calls: 'block', storage_gb: 'block' },
        thresholds: [80, 100],
      },
      period: { start: sub.current_period_start!.toISOString(), end: sub.current_period_end!.toISOString() },
      metered: {
        api_calls: {
          allowance: 1000,
          used: '250',
          percent: 25,
          thresholds: [80, 100],
          thresholds_crossed: [],
          overage: 'block',
          blocks_at: '1000',
          state: 'ok',
        },
        storage_gb: { allowance: 100, used: '0', percent: 0, thresholds: [80, 100], thresholds_crossed: [], overage: 'block', blocks_at: '100', state: 'ok' },
      },
    });
  });

  test('when a customer has neither a subscription nor overrides, then no plan, nothing granted, the calendar month', async () => {
    const c = await createCustomer(t);
    const res = await get(c.id);
    expect(res.status).toBe(200);
    const d = new Date(clock);
    expect(res.body).toEqual({
      plan: null,
      overrides: null,
      effective: { features: [], limits: {}, overage: {}, thresholds: [80, 100] },
      period: {
        start: new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1)).toISOString(),
        end: new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1)).toISOString(),
      },
      metered: {},
    });
  });

  test('when overrides add and remove features, then the plan’s features with those added and those removed', async () => {
    const c = await dealCustomer();
    const res = await put(c.id, { features: { add: ['beta', 'sso'], remove: ['audit-export'] } });
    expect(res.status).toBe(200);
    expect(res.body.effective.features).toEqual(['beta', 'sso']);
    expect(res.body.effective.limits).toEqual(PLAN.limits);
    expect(res.body.overrides).toMatchObject({ features: { add: ['beta', 'sso'], remove: ['audit-export'] }, limits: {}, overage: {}, applies: true });
    expect(res.body.overrides).not.toHaveProperty('instances');
    expect(res.body.overrides).not.toHaveProperty('thresholds');
    expect(await effective(c.id)).toEqual(res.body.effective);
  });

  test('when overrides raise one limit, lower another and unlimit a third, then each replaces the plan’s, and an unlimited allowance is no longer metered', async () => {
    const c = await dealCustomer();
    await report(c, 'api_calls', 450);
    const res = await put(c.id, { limits: { projects: 50, api_calls: 500, storage_gb: null, exports: 3 } });
    expect(res.status).toBe(200);
    expect(res.body.effective).toEqual({
      features: ['audit-export', 'sso'],
      limits: { projects: 50, api_calls: 500, storage_gb: null, instances: 5, exports: 3 },
      overage: { api_calls: 'block' },
      thresholds: [80, 100],
    });
    expect(Object.keys(res.body.metered)).toEqual(['api_calls']);
    expect(res.body.metered.api_calls).toMatchObject({ allowance: 500, used: '450', percent: 90, thresholds_crossed: [80], state: 'warn' });
    expect((await get(c.id)).body).toEqual(res.body);
  });

  test('when overrides raise, lower or unlimit the instances, or leave them out, then the effective limits.instances follows', async () => {
    const c = await dealCustomer();
    for (const [instances, expected] of [
      [40, 40],
      [2, 2],
      [null, null],
    ] as const) {
      const res = await put(c.id, { instances });
      expect(res.status).toBe(200);
      expect(res.body.overrides.instances).toBe(instances);
      expect((await effective(c.id)).limits.instances).toBe(expected);
    }
    const without = await put(c.id, { note: 'instances back to the plan' });
    expect(without.body.overrides).not.toHaveProperty('instances');
    expect(without.body.effective.limits.instances).toBe(5);
  });

  test('when overrides set overage policies and thresholds, then they replace the plan’s, and the metered status applies them', async () => {
    const c = await dealCustomer({ ...PLAN, overage: { api_calls: 'allow' }, thresholds: [50] });
    expect(await effective(c.id)).toMatchObject({ overage: { api_calls: 'allow', storage_gb: 'block' }, thresholds: [50] });
    await report(c, 'api_calls', 1100);
    const res = await put(c.id, { overage: { api_calls: 1.25, storage_gb: 'allow' }, thresholds: [100, 75, 90] });
    expect(res.status).toBe(200);
    expect(res.body.overrides).toMatchObject({ overage: { api_calls: 1.25, storage_gb: 'allow' }, thresholds: [75, 90, 100] });
    expect(res.body.effective).toMatchObject({ overage: { api_calls: 1.25, storage_gb: 'allow' }, thresholds: [75, 90, 100] });
    expect(res.body.metered.api_calls).toMatchObject({
      allowance: 1000,
      used: '1100',
      thresholds_crossed: [75, 90, 100],
      blocks_at: '1250',
      state: 'over_tolerated',
    });
    expect(res.body.metered.storage_gb).toMatchObject({ overage: 'allow', blocks_at: null, state: 'ok' });
  });

  test('when GET /api/me is asked, then it shows the plan and the effective entitlements, with every field it had', async () => {
    const c = await dealCustomer();
    await put(c.id, { features: { add: ['beta'] }, instances: 40, thresholds: [90] }).expect(200);
    const res = await request(t.app).get('/api/me').set('X-API-Key', c.apiKey);
    expect(res.status).toBe(200);
    expect(res.body.customer).toMatchObject({ id: c.id, email: c.email, status: 'active' });
    expect(res.body.key).toEqual({ id: c.keyId });
    expect(res.body.plan).toEqual({ code: c.plan, name: 'Pro' });
    expect(res.body.entitlements).toEqual(await effective(c.id));
    expect(res.body.entitlements).toMatchObject({ features: ['audit-export', 'beta', 'sso'], thresholds: [90] });
    expect(res.body.entitlements.limits.instances).toBe(40);

    const bare = await createCustomer(t);
    const none = await request(t.app).get('/api/me').set('X-API-Key', bare.apiKey);
    expect(none.body).toMatchObject({ plan: null, entitlements: { features: [], limits: {}, overage: {}, thresholds: [80, 100] } });
  });
});

describe('audit rows and events', () => {
  test('when overrides are put and cleared, then each is audited and emits customer.entitlements_updated with the overrides and the effective entitlements', async () => {
    const c = await dealCustomer();
    const expiresAt = new Date(clock + 30 * 24 * HOUR).toISOString();
    const body = { features: { add: ['beta'] }, limits: { projects: 20 }, instances: 8, note: 'pilot until the renewal', expires_at: expiresAt };
    const res = await put(c.id, body);
    expect(res.status).toBe(200);
    const audit = await t.db('audit_log').where({ request_id: res.headers['x-request-id'] });
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({
      action: 'customer.entitlements_update',
      outcome: 'success',
      actor: 'admin',
      target_type: 'customer',
      target_id: c.id,
      details: {
        terms: { features: { add: ['beta'], remove: [] }, limits: { projects: 20 }, instances: 8, overage: {} },
        note: 'pilot until the renewal',
        expires_at: expiresAt,
        replaced: false,
      },
    });
    const listed = await request(t.app).get('/api/events').query({ type: 'customer.entitlements_updated', customer_id: c.id }).set(admin);
    expect(listed.status).toBe(200);
    expect(listed.body.data).toHaveLength(1);
    expect(listed.body.data[0].data).toEqual({ customer_id: c.id, overrides: res.body.overrides, effective: res.body.effective });
    expect(res.body.overrides).toMatchObject({ instances: 8, note: 'pilot until the renewal', expires_at: expiresAt, applies: true });

    const cleared = await clear(c.id);
    expect(cleared.status).toBe(200);
    expect(cleared.body.overrides).toBeNull();
    expect(cleared.body.effective.limits).toEqual(PLAN.limits);
    expect(await row(c.id)).toBeUndefined();
    expect(await t.db('audit_log').where({ request_id: cleared.headers['x-request-id'] })).toEqual([
      expect.objectContaining({
        action: 'customer.entitlements_clear',
        outcome: 'success',
        target_id: c.id,
        details: expect.objectContaining({ note: 'pilot until the renewal', expires_at: expiresAt }),
      }),
    ]);
    const events = await updates(c.id);
    expect(events).toHaveLength(2);
    expect(events[1]!.data).toEqual({ customer_id: c.id, overrides: null, effective: cleared.body.effective });

    // Nothing left to clear: 404, audited as a failure, no event.
    const again = await clear(c.id);
    expectError(again, 404, 'NOT_FOUND');
    expect(again.body.error.message).toBe('Entitlement overrides not found');
    expect(await t.db('audit_log').where({ request_id: again.headers['x-request-id'] })).toEqual([
      expect.objectContaining({ action: 'customer.entitlements_clear', outcome: 'failure', target_id: c.id }),
    ]);
    expect(await updates(c.id)).toHaveLength(2);
  });

  test('when overrides are put again, then they replace the earlier ones (not merged) and the audit row says so', async () => {
    const c = await dealCustomer();
    await put(c.id, { features: { add: ['beta'] }, instances: 9 }).expect(200);
    const res = await put(c.id, { limits: { projects: 1 } });
    expect(res.body.overrides).toMatchObject({ features: { add: [], remove: [] }, limits: { projects: 1 } });
    expect(res.body.overrides).not.toHaveProperty('instances');
    expect(res.body.effective.features).toEqual(['audit-export', 'sso']);
    expect((await t.db('audit_log').where({ request_id: res.headers['x-request-id'] }).first())!.details.replaced).toBe(true);
    expect(await updates(c.id)).toHaveLength(2);
  });
});

describe('the end of overrides', () => {
  test('when overrides reach expires_at, then they stop applying with no write; the job announces it once, even run twice at once by two instances', async () => {
    const c = await dealCustomer();
    const expiresAt = new Date(clock + HOUR).toISOString();
    const res = await put(c.id, { features: { add: ['beta'] }, instances: 40, limits: { api_calls: 5000 }, expires_at: expiresAt });
    expect(res.status).toBe(200);
    expect(res.body.overrides.applies).toBe(true);
    expect(res.body.effective.limits).toMatchObject({ instances: 40, api_calls: 5000 });
    const stored = await row(c.id);
    const eventsBefore = await eventsOf(t.db, c.id);

    clock += 2 * HOUR;
    const after = await get(c.id);
    expect(after.status).toBe(200);
    expect(after.body.overrides).toMatchObject({ applies: false, expires_at: expiresAt, instances: 40 });
    expect(after.body.effective).toEqual({
      features: ['audit-export', 'sso'],
      limits: PLAN.limits,
      overage: { api_calls: 'block', storage_gb: 'block' },
      thresholds: [80, 100],
    });
    expect(after.body.metered.api_calls.allowance).toBe(1000);
    const me = await request(t.app).get('/api/me').set('X-API-Key', c.apiKey);
    expect(me.body.entitlements).toEqual(after.body.effective);
    // Reading changed nothing: the row as it was, no event.
    expect(await row(c.id)).toEqual(stored);
    expect(await eventsOf(t.db, c.id)).toEqual(eventsBefore);

    const other = await createTestApp(ENV, { now: () => clock });
    try {
      await Promise.all([t.c.overridesExpiry.run(), other.c.overridesExpiry.run(), t.c.overridesExpiry.run()]);
    } finally {
      await other.close();
    }
    await t.c.overridesExpiry.run();
    const expired = await eventsOf(t.db, c.id, 'customer.entitlements_expired');
    expect(expired).toHaveLength(1);
    expect(expired[0]!.data).toEqual({ customer_id: c.id, overrides: after.body.overrides, effective: after.body.effective });
    expect(await t.db('audit_log').where({ action: 'customer.entitlements_expire', target_id: c.id })).toEqual([
      expect.objectContaining({ actor: 'system', outcome: 'success', details: expect.objectContaining({ expires_at: expiresAt }) }),
    ]);
    const announced = (await row(c.id))!;
    expect(announced.expiry_announced_at).not.toBeNull();
    expect({ ...announced, expiry_announced_at: null }).toEqual(stored);

    // New overrides with a new end are announced again when that end comes.
    await put(c.id, { instances: 3, expires_at: new Date(clock + HOUR).toISOString() }).expect(200);
    expect((await row(c.id))!.expiry_announced_at).toBeNull();
    await t.c.overridesExpiry.run();
    expect(await eventsOf(t.db, c.id, 'customer.entitlements_expired')).toHaveLength(1);
    clock += 2 * HOUR;
    await t.c.overridesExpiry.run();
    expect(await eventsOf(t.db, c.id, 'customer.entitlements_expired')).toHaveLength(2);
  });
});

describe('refusals: a clear 422 naming the field, nothing written, and the same request made right succeeds', () => {
  const cases: [string, object, string, RegExp, object][] = [
    ['a threshold of 0', { thresholds: [0] }, 'thresholds.0', /from 1 to 1000/, { thresholds: [1] }],
    ['a threshold of 1001', { thresholds: [50, 1001] }, 'thresholds.1', /from 1 to 1000/, { thresholds: [50, 1000] }],
    ['a repeated threshold', { thresholds: [80, 80] }, 'thresholds', /must not repeat/, { thresholds: [80, 90] }],
    ['a tolerance of 1.0', { overage: { api_calls: 1.0 } }, 'overage.api_calls', /between 1\.1 and 3/, { overage: { api_calls: 1.1 } }],
    ['a tolerance of 3.5', { overage: { api_calls: 3.5 } }, 'overage.api_calls', /between 1\.1 and 3/, { overage: { api_calls: 3 } }],
    ['a tolerance of 1.255', { overage: { api_calls: 1.255 } }, 'overage.api_calls', /two decimal places/, { overage: { api_calls: 1.25 } }],
    ['an unknown policy', { overage: { api_calls: 'warn' } }, 'overage.api_calls', /block|allow/, { overage: { api_calls: 'allow' } }],
    [
      'an overage for a name that is not a metric',
      { overage: { projects: 'allow' } },
      'overage.projects',
      /not a usage metric/,
      { overage: { api_calls: 'allow' } },
    ],
    ['limits.instances', { limits: { instances: 5 } }, 'limits.instances', /top-level "instances"/, { instances: 5 }],
    [
      'a feature both added and removed',
      { features: { add: ['beta', 'sso'], remove: ['sso'] } },
      'features.remove.0',
      /both added and removed/,
      { features: { add: ['beta'], remove: ['sso'] } },
    ],
    ['an expires_at in the past', { expires_at: 'PAST' }, 'expires_at', /in the future/, { expires_at: 'FUTURE' }],
    ['an expires_at without a time zone', { expires_at: '2030-01-01T00:00:00' }, 'expires_at', /time zone/, { expires_at: '2030-01-01T00:00:00Z' }],
    ['a negative limit', { limits: { projects: -1 } }, 'limits.projects', /./, { limits: { projects: 0 } }],
    ['an unknown field', { features: { add: ['beta'] }, plan: 'pro' }, '', /unknown field\(s\): plan/, { features: { add: ['beta'] } }],
    ['an unknown field in features', { features: { add: ['beta'], replace: [] } }, 'features', /unknown field\(s\): replace/, { features: { add: ['beta'] } }],
    ['an empty note', { note: '  ' }, 'note', /must not be empty/, { note: 'a note' }],
  ];
  const dated = (body: object) =>
    JSON.parse(
      JSON.stringify(body)
        .replace('"PAST"', JSON.stringify(new Date(clock - 1000).toISOString()))
        .replace('"FUTURE"', JSON.stringify(new Date(clock + HOUR).toISOString())),
    );

  test.each(cases)('when the body has %s, then 422 at its path and nothing is written', async (_label, bad, at, message, good) => {
    const c = await dealCustomer();
    const res = await put(c.id, dated(bad));
    expectError(res, 422, 'VALIDATION_FAILED');
    expect(res.body.error.details).toContainEqual(expect.objectContaining({ path: at, message: expect.stringMatching(message) }));
    expect(await row(c.id)).toBeUndefined();
    expect(await updates(c.id)).toHaveLength(0);
    expect(await t.db('audit_log').where({ request_id: res.headers['x-request-id'] })).toEqual([
      expect.objectContaining({ action: 'customer.entitlements_update', outcome: 'failure', target_id: c.id }),
    ]);

    const ok = await put(c.id, dated(good));
    expect([ok.status, ok.body]).toEqual([200, expect.objectContaining({ overrides: expect.objectContaining({ applies: true }) })]);
    expect(await row(c.id)).toBeDefined();
    expect(await updates(c.id)).toHaveLength(1);
  });

  test('when an overage names a metric the deal gives no allowance, then 422 at overage.<metric>; with the allowance in the same body it is accepted', async () => {
    const c = await dealCustomer({ features: [], limits: { api_calls: null } });
    for (const bad of [{ overage: { api_calls: 'allow' } }, { overage: { storage_gb: 1.5 } }, { limits: { storage_gb: null }, overage: { storage_gb: 1.5 } }]) {
      const res = await put(c.id, bad);
      expectError(res, 422, 'VALIDATION_FAILED');
      const metric = Object.keys((bad as { overage: object }).overage)[0]!;
      expect(res.body.error.details).toEqual([{ path: `overage.${metric}`, message: expect.stringMatching(/has no allowance/) }]);
    }
    expect(await row(c.id)).toBeUndefined();
    expect(await updates(c.id)).toHaveLength(0);

    const ok = await put(c.id, { limits: { api_calls: 1000, storage_gb: 50 }, overage: { api_calls: 'allow', storage_gb: 1.5 } });
    expect(ok.status).toBe(200);
    expect(ok.body.effective.overage).toEqual({ api_calls: 'allow', storage_gb: 1.5 });
  });

  test('when overrides exist and a bad request comes, then they stay exactly as they were', async () => {
    const c = await dealCustomer();
    await put(c.id, { features: { add: ['beta'] }, instances: 7 }).expect(200);
    const before = await row(c.id);
    for (const bad of [{ thresholds: [0] }, { overage: { storage_gb: 'allow' }, limits: { storage_gb: null } }, { limits: { instances: 1 } }]) {
      expectError(await put(c.id, bad), 422, 'VALIDATION_FAILED');
    }
    expect(await row(c.id)).toEqual(before);
    expect(await updates(c.id)).toHaveLength(1);
  });

  test('when the customer is deleted, then PUT and DELETE are a 422 at id saying so, nothing changes, and GET still shows its deal', async () => {
    const c = await dealCustomer();
    await put(c.id, { features: { add: ['beta'] } }).expect(200);
    const before = await row(c.id);
    await deleteCustomer(t, c.id);
    const eventsBefore = await updates(c.id);

    for (const res of [await put(c.id, { instances: 3 }), await clear(c.id)]) {
      expectError(res, 422, 'VALIDATION_FAILED');
      expect(res.body.error.message).toMatch(/customer is deleted/);
      expect(res.body.error.details).toEqual([{ path: 'id', message: expect.stringMatching(/the customer is deleted/) }]);
    }
    expect(await row(c.id)).toEqual(before);
    expect(await updates(c.id)).toEqual(eventsBefore);
    const shown = await get(c.id);
    expect(shown.status).toBe(200);
    expect(shown.body.overrides.features.add).toEqual(['beta']);

    // Control: the same requests for an active customer.
    const active = await dealCustomer();
    expect((await put(active.id, { instances: 3 })).status).toBe(200);
    expect((await clear(active.id)).status).toBe(200);
  });

  test('when the customer does not exist, then GET, PUT and DELETE are 404 and nothing is written', async () => {
    const id = '01900000-0000-7000-8000-00000000abcd';
    expectError(await get(id), 404, 'NOT_FOUND');
    expectError(await put(id, { instances: 3 }), 404, 'NOT_FOUND');
    expectError(await clear(id), 404, 'NOT_FOUND');
    expectError(await get('not-a-uuid'), 404, 'NOT_FOUND');
    expect(await row(id)).toBeUndefined();
  });
});

describe('plans: overage policies and thresholds', () => {
  const base = { features: [], limits: { api_calls: 1000, projects: 5 } };
  const cases: [string, object, string, RegExp, object][] = [
    ['a threshold of 0', { thresholds: [0] }, 'entitlements.thresholds.0', /from 1 to 1000/, { thresholds: [1] }],
    ['a threshold of 1001', { thresholds: [1001] }, 'entitlements.thresholds.0', /from 1 to 1000/, { thresholds: [1000] }],
    ['a repeated threshold', { thresholds: [80, 80] }, 'entitlements.thresholds', /must not repeat/, { thresholds: [100, 80] }],
    ['a tolerance of 1.0', { overage: { api_calls: 1.0 } }, 'entitlements.overage.api_calls', /between 1\.1 and 3/, { overage: { api_calls: 1.1 } }],
    ['a tolerance of 3.5', { overage: { api_calls: 3.5 } }, 'entitlements.overage.api_calls', /between 1\.1 and 3/, { overage: { api_calls: 3 } }],
    ['a tolerance of 1.255', { overage: { api_calls: 1.255 } }, 'entitlements.overage.api_calls', /two decimal places/, { overage: { api_calls: 1.25 } }],
    [
      'an overage for a name that is not a metric',
      { overage: { projects: 'allow' } },
      'entitlements.overage.projects',
      /not a usage metric/,
      { overage: { api_calls: 'allow' } },
    ],
    [
      'an overage for a metric without allowance',
      { overage: { storage_gb: 'allow' } },
      'entitlements.overage.storage_gb',
      /no allowance/,
      { overage: { api_calls: 'block' } },
    ],
  ];

  test.each(cases)(
    'when a plan has %s, then POST and PATCH are a 422 at its path and nothing is written; the right value is accepted and shown',
    async (_l, bad, at, message, good) => {
      const code = `deal-${randomBytes(5).toString('hex')}`;
      const refused = await request(t.app)
        .post('/api/plans')
        .set(admin)
        .send({ code, name: 'Deal', entitlements: { ...base, ...bad } });
      expectError(refused, 422, 'VALIDATION_FAILED');
      expect(refused.body.error.details).toContainEqual(expect.objectContaining({ path: at, message: expect.stringMatching(message) }));
      expect(await t.db('plans').where({ code })).toHaveLength(0);

      const created = await request(t.app)
        .post('/api/plans')
        .set(admin)
        .send({ code, name: 'Deal', entitlements: { ...base, ...good } });
      expect(created.status).toBe(201);
      const shown = (await request(t.app).get(`/api/plans/${code}`).set(admin)).body.plan.entitlements;
      expect(shown).toEqual(created.body.plan.entitlements);
      const sorted = (v: object) => JSON.parse(JSON.stringify(v, (_k, x) => (Array.isArray(x) ? [...x].sort((a, b) => a - b) : x)));
      expect(shown).toEqual({ ...base, ...sorted(good) });

      const before = (await t.db('plans').where({ code }).first())!;
      const patched = await request(t.app)
        .patch(`/api/plans/${code}`)
        .set(admin)
        .send({ entitlements: { ...base, ...bad } });
      expectError(patched, 422, 'VALIDATION_FAILED');
      expect(patched.body.error.details).toContainEqual(expect.objectContaining({ path: at }));
      expect((await t.db('plans').where({ code }).first())!.entitlements).toEqual(before.entitlements);

      const control = await request(t.app)
        .patch(`/api/plans/${code}`)
        .set(admin)
        .send({ entitlements: { ...base, ...good, features: ['changed'] } });
      expect(control.status).toBe(200);
      expect(control.body.plan.entitlements).toEqual({ ...base, ...sorted(good), features: ['changed'] });
    },
  );
});
