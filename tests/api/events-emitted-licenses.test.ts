/**
 * License and instance events, read straight from the events table: each written by the change that
 * causes it with the right customer and data, none when that change rolls back (forced by a trigger
 * that fails the change's own audit row, or the event itself), instance.limit_reached throttled,
 * and the time-driven license.expiring_soon / license.expired announced once per episode, by repeated
 * and concurrent runs of the notices job alike, on the test app's clock.
 */
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { expectError } from '../helpers/envelope';
import { createPlan, subscribe, type CreatedCustomer } from '../helpers/factories';
import { createTestApp, type TestApp } from '../helpers/test-app';

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
const MONTH_MS = 30 * DAY_MS;
const UUID = /^[0-9a-f-]{36}$/;
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
const sec = (ms: number) => Math.floor(ms / 1000);

interface EventRowJson {
  id: string;
  type: string;
  customer_id: string | null;
  data: Record<string, unknown>;
}
/** The customer's events of these types, oldest first (by commit order: the test clock stands still), straight from the table. */
const eventsOf = async (customerId: string, ...types: string[]): Promise<EventRowJson[]> =>
  t
    .db('events')
    .where({ customer_id: customerId })
    .whereIn('type', types)
    .orderBy([{ column: 'created_at' }, { column: 'id' }])
    .select('id', 'type', 'customer_id', 'data');

async function customerWith(instances: number | null) {
  const plan = await createPlan(t, { entitlements: { features: [], limits: instances === null ? {} : { instances } } });
  const s = await subscribe(t, { plan });
  await request(t.app).get('/api/me').set('X-API-Key', s.customer.apiKey).expect(200);
  return s;
}

const activate = (c: CreatedCustomer, fingerprint: string) =>
  request(t.app).post('/api/licenses/activations').set('X-API-Key', c.apiKey).send({ fingerprint, name: 'build server', hostname: 'ci-1.acme.internal' });

/**
 * Makes inserts into `table` that match `condition` (SQL over NEW, ids interpolated only after a UUID
 * check) fail for the duration of `fn`: the change that writes them rolls back as a whole.
 */
async function failing<T>(table: 'audit_log' | 'events', condition: string, fn: () => Promise<T>): Promise<T> {
  const name = `fail_${randomBytes(6).toString('hex')}`;
  await t.db.raw(`create function ${name}() returns trigger language plpgsql as $$
    begin if ${condition} then raise exception 'forced failure (test)'; end if; return new; end $$`);
  await t.db.raw(`create trigger ${name} before insert on ${table} for each row execute function ${name}()`);
  try {
    return await fn();
  } finally {
    await t.db.raw(`drop trigger ${name} on ${table}`);
    await t.db.raw(`drop function ${name}()`);
  }
}
const auditOf = (customerId: string, action: string) => {
  if (!UUID.test(customerId) || !/^[a-z._]+$/.test(action)) throw new Error('bad trigger condition');
  return `new.action = '${action}' and new.details->>'customer_id' = '${customerId}'`;
};

describe('instance events', () => {
  test('when an instance activates, then one instance.activated with the activation as the API shows it; activating again (a heartbeat) writes none', async () => {
    const { customer: c } = await customerWith(3);
    const res = await activate(c, fp()).expect(201);
    await activate(c, res.body.activation.fingerprint).expect(200);
    const events = await eventsOf(c.id, 'instance.activated');
    expect(events).toEqual([{ id: expect.stringMatching(/^evt_[0-9a-f]{32}$/), type: 'instance.activated', customer_id: c.id, data: res.body.activation }]);
  });

  test('when an admin activates an air-gapped instance (offline license), then instance.activated carries its expires_at', async () => {
    const { customer: c } = await customerWith(3);
    const f = fp();
    await request(t.app).post(`/api/customers/${c.id}/licenses`).set(admin()).send({ fingerprint: f, ttl: '20d' }).expect(201);
    const [e, ...rest] = await eventsOf(c.id, 'instance.activated');
    expect(rest).toEqual([]);
    const row = await t.db('license_activations').where({ customer_id: c.id, fingerprint: f }).first();
    expect(e!.data).toMatchObject({ id: row!.id, fingerprint: f, expires_at: new Date((sec(clock) + 20 * 86_400) * 1000).toISOString(), released_at: null });
  });

  test('when the activation rolls back (its audit row fails), then no instance.activated and no activation; the same activation afterwards writes one (control)', async () => {
    const { customer: c } = await customerWith(3);
    const f = fp();
    const res = await failing('audit_log', auditOf(c.id, 'license.activation_create'), () => activate(c, f));
    expectError(res, 500, 'INTERNAL_ERROR');
    expect(await t.db('license_activations').where({ customer_id: c.id })).toEqual([]);
    expect(await eventsOf(c.id, 'instance.activated')).toEqual([]);
    const ok = await activate(c, f).expect(201);
    expect((await eventsOf(c.id, 'instance.activated')).map((e) => e.data)).toEqual([ok.body.activation]);
  });

  test('when the customer and then an admin release instances, then instance.deactivated each, with the released activation (release_reason customer / admin)', async () => {
    const { customer: c } = await customerWith(3);
    const [f1, f2] = [fp(), fp()];
    await activate(c, f1).expect(201);
    await activate(c, f2).expect(201);
    clock += HOUR_MS;
    const byCustomer = await request(t.app).delete(`/api/licenses/activations/${f1}`).set('X-API-Key', c.apiKey).expect(200);
    const byAdmin = await request(t.app).delete(`/api/customers/${c.id}/activations/${f2}`).set(admin()).expect(200);
    const events = await eventsOf(c.id, 'instance.deactivated');
    expect(events.map((e) => [e.type, e.customer_id, e.data])).toEqual([
      ['instance.deactivated', c.id, byCustomer.body.activation],
      ['instance.deactivated', c.id, byAdmin.body.activation],
    ]);
    expect(events.map((e) => [e.data.release_reason, e.data.released_at])).toEqual([
      ['customer', new Date(clock).toISOString()],
      ['admin', new Date(clock).toISOString()],
    ]);
  });

  test('when a release rolls back, then no instance.deactivated and the instance stays active; released afterwards, one (control)', async () => {
    const { customer: c } = await customerWith(3);
    const f = fp();
    await activate(c, f).expect(201);
    const res = await failing('audit_log', auditOf(c.id, 'license.activation_release'), () =>
      request(t.app).delete(`/api/licenses/activations/${f}`).set('X-API-Key', c.apiKey),
    );
    expectError(res, 500, 'INTERNAL_ERROR');
    expect((await t.db('license_activations').where({ customer_id: c.id, fingerprint: f }).first())!.released_at).toBeNull();
    expect(await eventsOf(c.id, 'instance.deactivated')).toEqual([]);
    await request(t.app).delete(`/api/licenses/activations/${f}`).set('X-API-Key', c.apiKey).expect(200);
    expect(await eventsOf(c.id, 'instance.deactivated')).toHaveLength(1);
  });

  test('when the stale-seat sweep frees two instances, then one instance.released each (release_reason stale); a second sweep writes none', async () => {
    const { customer: c } = await customerWith(3);
    const fs = [fp(), fp()];
    for (const f of fs) await activate(c, f).expect(201);
    clock += 15 * DAY_MS;
    await t.c.licenses.sweep();
    await t.c.licenses.sweep();
    const rows = await t.db('license_activations').where({ customer_id: c.id }).orderBy('fingerprint');
    const events = await eventsOf(c.id, 'instance.released');
    expect(events).toHaveLength(2);
    for (const row of rows) {
      const e = events.find((x) => x.data.id === row.id)!;
      expect(e.customer_id).toBe(c.id);
      expect(e.data).toMatchObject({ fingerprint: row.fingerprint, release_reason: 'stale', released_at: new Date(clock).toISOString(), customer_id: c.id });
    }
  });

  test('when the sweep rolls back, then no instance.released and the activation is still unreleased; the next sweep writes it (control)', async () => {
    const { customer: c } = await customerWith(3);
    await activate(c, fp()).expect(201);
    clock += 15 * DAY_MS;
    await expect(failing('audit_log', auditOf(c.id, 'license.activation_expire'), () => t.c.licenses.sweep())).rejects.toThrow(/forced failure/);
    expect((await t.db('license_activations').where({ customer_id: c.id }).first())!.released_at).toBeNull();
    expect(await eventsOf(c.id, 'instance.released')).toEqual([]);
    await t.c.licenses.sweep();
    expect(await eventsOf(c.id, 'instance.released')).toHaveLength(1);
  });

  test('when activating or listing finds a stale activation, then it is released with its instance.released too', async () => {
    const { customer: c } = await customerWith(1);
    const gone = fp();
    await activate(c, gone).expect(201);
    clock += 15 * DAY_MS;
    await activate(c, fp()).expect(201);
    expect((await eventsOf(c.id, 'instance.released')).map((e) => e.data.fingerprint)).toEqual([gone]);
  });
});

describe('instance.limit_reached', () => {
  test('when the activation that takes the last seat succeeds, then no limit_reached; refused ones write one, with limit, active and fingerprint, and no instance.activated', async () => {
    const { customer: c } = await customerWith(2);
    await activate(c, fp()).expect(201);
    await activate(c, fp()).expect(201);
    expect(await eventsOf(c.id, 'instance.limit_reached')).toEqual([]);
    const refused = fp();
    const res = await activate(c, refused);
    expectError(res, 409, 'INSTANCE_LIMIT_REACHED');
    const events = await eventsOf(c.id, 'instance.limit_reached');
    expect(events.map((e) => [e.type, e.customer_id, e.data])).toEqual([
      ['instance.limit_reached', c.id, { customer_id: c.id, fingerprint: refused, limit: 2, active: 2, seat_frees_at: res.body.error.details.seat_frees_at }],
    ]);
    expect((await eventsOf(c.id, 'instance.activated')).map((e) => e.data.fingerprint)).not.toContain(refused);
    expect(await eventsOf(c.id, 'instance.activated')).toHaveLength(2);
  });

  test('when refusals repeat within the hour (in a row and 10 at once), then one event; after the hour, another (control)', async () => {
    const { customer: c } = await customerWith(1);
    await activate(c, fp()).expect(201);
    expectError(await activate(c, fp()), 409, 'INSTANCE_LIMIT_REACHED');
    expectError(await activate(c, fp()), 409, 'INSTANCE_LIMIT_REACHED');
    clock += 30 * 60_000;
    const burst = await Promise.all(Array.from({ length: 10 }, () => activate(c, fp())));
    for (const r of burst) expectError(r, 409, 'INSTANCE_LIMIT_REACHED');
    expect(await eventsOf(c.id, 'instance.limit_reached')).toHaveLength(1);
    clock += 31 * 60_000; // 61 minutes after the first
    const late = fp();
    expectError(await activate(c, late), 409, 'INSTANCE_LIMIT_REACHED');
    const events = await eventsOf(c.id, 'instance.limit_reached');
    expect(events).toHaveLength(2);
    expect(events[1]!.data.fingerprint).toBe(late);
  });

  test('when 10 instances of a fresh customer are refused at once, then exactly one event', async () => {
    const { customer: c } = await customerWith(1);
    await activate(c, fp()).expect(201);
    const burst = await Promise.all(Array.from({ length: 10 }, () => activate(c, fp())));
    for (const r of burst) expectError(r, 409, 'INSTANCE_LIMIT_REACHED');
    expect(await eventsOf(c.id, 'instance.limit_reached')).toHaveLength(1);
  });

  test('when an offline activation is refused for the limit, then it is recorded too; another customer is throttled separately', async () => {
    const a = await customerWith(1);
    const b = await customerWith(1);
    for (const s of [a, b]) await activate(s.customer, fp()).expect(201);
    const f = fp();
    expectError(await request(t.app).post(`/api/customers/${a.customer.id}/licenses`).set(admin()).send({ fingerprint: f }), 409, 'INSTANCE_LIMIT_REACHED');
    expectError(await activate(b.customer, fp()), 409, 'INSTANCE_LIMIT_REACHED');
    expect((await eventsOf(a.customer.id, 'instance.limit_reached')).map((e) => e.data.fingerprint)).toEqual([f]);
    expect(await eventsOf(b.customer.id, 'instance.limit_reached')).toHaveLength(1);
  });
});

describe('license.expiring_soon and license.expired (the notices job)', () => {
  const run = () => t.c.licenseNotices.run();
  const cancelAtPeriodEnd = (s: { customerId: string; id: string }) =>
    request(t.app).delete(`/api/customers/${s.customerId}/subscriptions/${s.id}`).set(admin()).expect(200);
  const license = async (c: CreatedCustomer) => (await request(t.app).get('/api/licenses').set('X-API-Key', c.apiKey).expect(200)).body.claims;

  test('when a subscription set to cancel comes within LICENSE_EXPIRING_SOON_DAYS of its end, then one expiring_soon; at the end, one expired; each run again writes nothing', async () => {
    const s = await subscribe(t);
    const end = clock + MONTH_MS;
    await cancelAtPeriodEnd(s);
    clock = end - 8 * DAY_MS;
    await run();
    expect(await eventsOf(s.customerId, 'license.expiring_soon', 'license.expired')).toEqual([]);

    clock = end - 3 * DAY_MS;
    await run();
    await run();
    const claims = await license(s.customer);
    const soon = await eventsOf(s.customerId, 'license.expiring_soon', 'license.expired');
    expect(soon.map((e) => [e.type, e.customer_id, e.data])).toEqual([
      [
        'license.expiring_soon',
        s.customerId,
        {
          customer_id: s.customerId,
          status: 'active',
          plan: claims.plan,
          subscription: { id: s.id, status: 'active', current_period_end: sec(end), cancel_at_period_end: true },
          valid_until: sec(end),
          grace_until: null,
          ends_at: sec(end),
        },
      ],
    ]);
    // The same fields as the license says them.
    expect(soon[0]!.data).toMatchObject({
      status: claims.status,
      valid_until: claims.valid_until,
      grace_until: claims.grace_until,
      subscription: claims.subscription,
    });

    clock = end + HOUR_MS;
    await run();
    await run();
    const all = await eventsOf(s.customerId, 'license.expiring_soon', 'license.expired');
    expect(all.map((e) => e.type)).toEqual(['license.expiring_soon', 'license.expired']);
    expect(all[1]!.data).toEqual({
      customer_id: s.customerId,
      status: 'expired',
      plan: claims.plan,
      subscription: { id: s.id, status: 'canceled', current_period_end: sec(end), cancel_at_period_end: false },
      valid_until: null,
      grace_until: null,
      ends_at: sec(end),
    });
    expect((await license(s.customer)).status).toBe('expired');
    expect(await t.db('license_notices').where({ customer_id: s.customerId }).orderBy('kind', 'desc').pluck('kind')).toEqual(['expiring_soon', 'expired']);
  });

  test('when a subscription renews normally, then neither near its end nor after it (renewal in sight: control)', async () => {
    const s = await subscribe(t);
    const end = clock + MONTH_MS;
    clock = end - 2 * DAY_MS;
    await run();
    clock = end + HOUR_MS;
    await run();
    expect((await license(s.customer)).status).toBe('active');
    expect(await eventsOf(s.customerId, 'license.expiring_soon', 'license.expired')).toEqual([]);
  });

  test('when payment fails and the grace nears its end, then expiring_soon (status grace); when it runs out, expired with grace_until', async () => {
    const graceDays = t.c.config.license.graceDays;
    const s = await subscribe(t);
    const since = clock - (graceDays - 4) * DAY_MS;
    // As a Stripe update to past_due records it.
    await t.db.raw('update subscriptions set status = ?, payment_failing_since = ? where id = ?', ['past_due', new Date(since), s.id]);
    const graceUntil = sec(since) + graceDays * 86_400;
    await run();
    await run();
    clock = graceUntil * 1000 + HOUR_MS;
    await run();
    await run();
    const events = await eventsOf(s.customerId, 'license.expiring_soon', 'license.expired');
    expect(events.map((e) => [e.type, e.data.status, e.data.valid_until, e.data.grace_until, e.data.ends_at])).toEqual([
      ['license.expiring_soon', 'grace', null, graceUntil, graceUntil],
      ['license.expired', 'expired', null, graceUntil, graceUntil],
    ]);
    expect(events[0]!.data.subscription).toMatchObject({ id: s.id, status: 'past_due' });
  });

  test('when a subscription is canceled at once, then expired; one that never got paid (incomplete) is not announced', async () => {
    const s = await subscribe(t);
    await request(t.app).delete(`/api/customers/${s.customerId}/subscriptions/${s.id}`).query({ immediately: 'true' }).set(admin()).expect(200);
    const never = await subscribe(t);
    await t.db('subscriptions').where({ id: never.id }).update({ status: 'incomplete_expired' });
    clock += HOUR_MS;
    await run();
    expect((await eventsOf(s.customerId, 'license.expired')).map((e) => [e.customer_id, e.data.ends_at])).toEqual([[s.customerId, sec(clock - HOUR_MS)]]);
    expect(await eventsOf(never.customerId, 'license.expired')).toEqual([]);
  });

  test('when a subscription set to cancel is renewed after all, then a later cancel is a new episode: a second expiring_soon with the later ends_at', async () => {
    const s = await subscribe(t);
    const end1 = clock + MONTH_MS;
    await cancelAtPeriodEnd(s);
    clock = end1 - 3 * DAY_MS;
    await run();
    // The customer changes its mind (as Stripe reports it): the subscription renews at end1.
    await t.db('subscriptions').where({ id: s.id }).update({ cancel_at_period_end: false });
    clock = end1 + HOUR_MS;
    await run();
    const end2 = end1 + MONTH_MS;
    expect((await license(s.customer)).valid_until).toBe(sec(end2));
    await cancelAtPeriodEnd(s);
    clock = end2 - 3 * DAY_MS;
    await run();
    await run();
    const events = await eventsOf(s.customerId, 'license.expiring_soon', 'license.expired');
    expect(events.map((e) => [e.type, e.data.ends_at])).toEqual([
      ['license.expiring_soon', sec(end1)],
      ['license.expiring_soon', sec(end2)],
    ]);
  });

  test('when two instances run the job at once, then each episode is announced exactly once', async () => {
    const soon = await Promise.all([subscribe(t), subscribe(t), subscribe(t)]);
    const ended = await Promise.all([subscribe(t), subscribe(t), subscribe(t)]);
    for (const s of soon) await cancelAtPeriodEnd(s);
    clock += MONTH_MS - 2 * DAY_MS;
    for (const s of ended)
      await request(t.app).delete(`/api/customers/${s.customerId}/subscriptions/${s.id}`).query({ immediately: 'true' }).set(admin()).expect(200);
    const other = await createTestApp({}, { now: () => clock });
    try {
      const runs = await Promise.all([t.c.licenseNotices.run(), other.c.licenseNotices.run(), t.c.licenseNotices.run(), other.c.licenseNotices.run()]);
      expect(runs.reduce((n, r) => n + r.expiring_soon, 0)).toBeGreaterThanOrEqual(soon.length);
      await Promise.all([t.c.licenseNotices.run(), other.c.licenseNotices.run()]);
    } finally {
      await other.close();
    }
    for (const s of soon)
      expect((await eventsOf(s.customerId, 'license.expiring_soon', 'license.expired')).map((e) => e.type)).toEqual(['license.expiring_soon']);
    for (const s of ended) expect((await eventsOf(s.customerId, 'license.expiring_soon', 'license.expired')).map((e) => e.type)).toEqual(['license.expired']);
  });

  test('when the event cannot be written, then no notice is kept either, and the next run announces it (control)', async () => {
    const s = await subscribe(t);
    await cancelAtPeriodEnd(s);
    clock += MONTH_MS - 3 * DAY_MS;
    if (!UUID.test(s.customerId)) throw new Error('bad id');
    await failing('events', `new.customer_id = '${s.customerId}' and new.type like 'license.%'`, () => run());
    expect(await t.db('license_notices').where({ customer_id: s.customerId })).toEqual([]);
    expect(await eventsOf(s.customerId, 'license.expiring_soon')).toEqual([]);
    expect(t.logs.some((l) => l.includes('license notice failed') && l.includes(s.customerId))).toBe(true);
    await run();
    expect(await eventsOf(s.customerId, 'license.expiring_soon')).toHaveLength(1);
    expect(await t.db('license_notices').where({ customer_id: s.customerId }).pluck('kind')).toEqual(['expiring_soon']);
  });
});
