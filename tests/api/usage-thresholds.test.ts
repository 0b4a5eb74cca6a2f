/**
 * Usage thresholds and allowances (issue 21): a customer's period usage crossing the thresholds of
 * its deal is announced once per threshold, period and allowance (usage.threshold_crossed), the end
 * of an allowance's tolerance once (usage.allowance_exhausted), also with two instances ingesting at
 * once; a replay announces nothing; a new period starts clean. GET /api/usage and the admin usage
 * show each metered limit's state. Events are read from the events table and GET /api/events.
 */
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { createCrossingsRepository } from '../../src/modules/entitlements/crossings-repository';
import { createThresholdWatch } from '../../src/modules/entitlements/threshold-watch';
import { createUsageRepository } from '../../src/modules/usage/usage-repository';
import { createUsageService } from '../../src/modules/usage/usage-service';
import { eventFaults } from '../helpers/event-faults';
import { createCustomer, createPlan, subscribe, type CreatedCustomer } from '../helpers/factories';
import { createTestApp, type TestApp } from '../helpers/test-app';
import { cli, startService, type Service } from '../cli/cli-harness';

const ENV = { USAGE_METRICS: 'api_calls,storage_gb,exports' };
const DAY = 86_400_000;
const clock = Date.now();
let t: TestApp;
let t2: TestApp;
let admin: Record<string, string>;

beforeAll(async () => {
  // Two instances on one database, each with its own watch and its own cache of deals.
  t = await createTestApp(ENV, { now: () => clock });
  t2 = await createTestApp(ENV, { now: () => clock });
  admin = { Authorization: `Bearer ${t.adminToken}` };
});
afterAll(async () => {
  await t.close();
  await t2.close();
});

type Policy = 'block' | 'allow' | number;
type Json = Record<string, any>;

const key = () => `k-${randomBytes(8).toString('hex')}`;

/** A customer subscribed to a plan of its own: api_calls metered (allowance, policy, thresholds); storage_gb unlimited; exports not limited. */
async function customerWith(policy: Policy, opts: { allowance?: number; thresholds?: number[]; via?: TestApp } = {}) {
  const via = opts.via ?? t;
  const plan = await createPlan(via, {
    entitlements: {
      features: [],
      limits: { api_calls: opts.allowance ?? 1000, storage_gb: null },
      overage: { api_calls: policy },
      thresholds: opts.thresholds ?? [50, 80, 100],
    },
  });
  const sub = await subscribe(via, { plan });
  return { ...sub.customer, plan, subscription: sub.body as Json };
}

/** Reports usage through an instance; 201. */
async function use(c: CreatedCustomer, quantity: number | string, via: TestApp = t, metric = 'api_calls') {
  const res = await request(via.app).post('/api/usage').set('X-API-Key', c.apiKey).send({ metric, quantity, idempotency_key: key() });
  if (res.status !== 201) throw new Error(`use: ${res.status} ${JSON.stringify(res.body)}`);
}

/** The instances' watches have checked everything their writes marked (the acknowledgement never waits for them). */
const settle = async (...apps: TestApp[]) => {
  for (const a of apps.length ? apps : [t, t2]) await a.c.thresholdWatch.drained();
};

/** The customer's usage events, oldest first. */
async function usageEvents(c: { id: string }) {
  const rows = await t.db('events').where({ customer_id: c.id }).whereIn('type', ['usage.threshold_crossed', 'usage.allowance_exhausted']).orderBy('id');
  return rows as { id: string; type: string; data: Json }[];
}
const summary = (events: { type: string; data: Json }[]) =>
  events.map((e) => (e.type === 'usage.threshold_crossed' ? `threshold ${e.data.threshold_percent}` : `exhausted ${e.data.quantity}`));

const ownUsage = async (c: CreatedCustomer, via: TestApp = t, query = '') =>
  (await request(via.app).get(`/api/usage${query}`).set('X-API-Key', c.apiKey).expect(200)).body as Json;
const adminUsage = async (id: string, query = '') => (await request(t.app).get(`/api/customers/${id}/usage${query}`).set(admin).expect(200)).body as Json;

/** What GET /api/usage and the admin usage say of api_calls: both the same. */
async function meteredNow(c: CreatedCustomer): Promise<Json> {
  const own = await ownUsage(c);
  const adm = await adminUsage(c.id);
  expect(adm.metered).toEqual(own.metered);
  expect(adm.billing_period).toEqual(own.billing_period);
  return own.metered.api_calls;
}

describe('a plan with an allowance of 1,000 api_calls, thresholds 50, 80 and 100', () => {
  test('when a block allowance is driven across its thresholds, then each is announced once with its figures, and allowance_exhausted at 100%', async () => {
    const c = await customerWith('block');
    const period = { period_start: c.subscription.current_period_start, period_end: c.subscription.current_period_end };
    const crossed = (percent: number, quantity: string, state: string) => ({
      customer_id: c.id,
      metric: 'api_calls',
      threshold_percent: percent,
      allowance: 1000,
      quantity,
      ...period,
      overage: 'block',
      state,
    });

    await use(c, 400);
    await settle();
    expect(await usageEvents(c)).toEqual([]);
    expect(await meteredNow(c)).toEqual({
      allowance: 1000,
      used: '400',
      percent: 40,
      thresholds: [50, 80, 100],
      thresholds_crossed: [],
      overage: 'block',
      blocks_at: '1000',
      state: 'ok',
    });

    await use(c, '150.5');
    await settle();
    expect((await usageEvents(c)).map((e) => e.data)).toEqual([crossed(50, '550.5', 'warn')]);
    expect(await meteredNow(c)).toMatchObject({ used: '550.5', percent: 55.05, thresholds_crossed: [50], state: 'warn' });

    await use(c, 300);
    await settle();
    await use(c, 200);
    await settle();
    const events = await usageEvents(c);
    expect(events.map((e) => e.type)).toEqual(['usage.threshold_crossed', 'usage.threshold_crossed', 'usage.threshold_crossed', 'usage.allowance_exhausted']);
    expect(events.map((e) => e.data)).toEqual([
      crossed(50, '550.5', 'warn'),
      crossed(80, '850.5', 'warn'),
      crossed(100, '1050.5', 'blocked'),
      { customer_id: c.id, metric: 'api_calls', allowance: 1000, quantity: '1050.5', overage: 'block', blocks_at: '1000', ...period },
    ]);
    expect(await meteredNow(c)).toMatchObject({ used: '1050.5', percent: 105.05, thresholds_crossed: [50, 80, 100], state: 'blocked' });

    // More usage past the end crosses nothing new.
    await use(c, 500);
    await settle();
    expect(await usageEvents(c)).toHaveLength(4);

    // Each crossing is recorded once, with the event that announced it.
    const rows = await t
      .db('usage_threshold_crossings')
      .where({ customer_id: c.id })
      .orderBy([{ column: 'kind', order: 'desc' }, 'percent']);
    expect(rows.map((r) => [r.kind, r.percent, r.allowance, r.period_start.toISOString(), r.period_end.toISOString()])).toEqual([
      ['threshold', 50, '1000', period.period_start, period.period_end],
      ['threshold', 80, '1000', period.period_start, period.period_end],
      ['threshold', 100, '1000', period.period_start, period.period_end],
      ['exhausted', 100, '1000', period.period_start, period.period_end],
    ]);
    expect(rows.map((r) => r.event_id)).toEqual(events.map((e) => e.id));

    // GET /api/events shows the same events, newest first.
    const listed = await request(t.app).get(`/api/events?type=usage.threshold_crossed&customer_id=${c.id}`).set(admin).expect(200);
    expect(listed.body.data.map((e: Json) => [e.id, e.data])).toEqual(
      events
        .filter((e) => e.type === 'usage.threshold_crossed')
        .reverse()
        .map((e) => [e.id, e.data]),
    );
    const exhausted = await request(t.app).get(`/api/events?type=usage.allowance_exhausted&customer_id=${c.id}`).set(admin).expect(200);
    expect(exhausted.body.data.map((e: Json) => e.id)).toEqual([events[3]!.id]);
  });

  test('when the policy is allow, then every threshold is announced and the allowance is never exhausted, however far past it', async () => {
    const c = await customerWith('allow');
    await use(c, 900);
    await settle();
    expect(summary(await usageEvents(c))).toEqual(['threshold 50', 'threshold 80']);
    expect(await meteredNow(c)).toMatchObject({ state: 'warn', blocks_at: null, overage: 'allow' });
    await use(c, 600);
    await settle();
    expect(await meteredNow(c)).toMatchObject({ used: '1500', percent: 150, state: 'over_tolerated', blocks_at: null });
    await use(c, 10_000);
    await settle();
    const events = await usageEvents(c);
    expect(summary(events)).toEqual(['threshold 50', 'threshold 80', 'threshold 100']);
    expect(events[2]!.data).toMatchObject({ threshold_percent: 100, quantity: '1500', overage: 'allow', state: 'over_tolerated' });
    expect(await meteredNow(c)).toMatchObject({ used: '11500', state: 'over_tolerated' });
  });

  test('when the policy is a tolerance of 1.25, then past 100% the use is tolerated, and allowance_exhausted comes at 125%', async () => {
    const c = await customerWith(1.25);
    await use(c, 1100);
    await settle();
    expect(summary(await usageEvents(c))).toEqual(['threshold 50', 'threshold 80', 'threshold 100']);
    expect((await usageEvents(c))[2]!.data).toMatchObject({ quantity: '1100', overage: 1.25, state: 'over_tolerated' });
    expect(await meteredNow(c)).toMatchObject({ used: '1100', state: 'over_tolerated', blocks_at: '1250', overage: 1.25 });

    await use(c, 149);
    await settle();
    expect(await usageEvents(c)).toHaveLength(3);
    expect(await meteredNow(c)).toMatchObject({ used: '1249', state: 'over_tolerated' });

    await use(c, 1);
    await settle();
    const events = await usageEvents(c);
    expect(summary(events)).toEqual(['threshold 50', 'threshold 80', 'threshold 100', 'exhausted 1250']);
    expect(events[3]!.data).toEqual({
      customer_id: c.id,
      metric: 'api_calls',
      allowance: 1000,
      quantity: '1250',
      overage: 1.25,
      blocks_at: '1250',
      period_start: c.subscription.current_period_start,
      period_end: c.subscription.current_period_end,
    });
    expect(await meteredNow(c)).toMatchObject({ used: '1250', percent: 125, state: 'blocked' });
  });

  test('when a metric has no allowance (unlimited, or not limited at all), then no usage event is ever written and it is not metered', async () => {
    const c = await customerWith('block');
    await use(c, 1_000_000, t, 'storage_gb');
    await use(c, 1_000_000, t, 'exports');
    await settle();
    expect(await usageEvents(c)).toEqual([]);
    const own = await ownUsage(c);
    expect(Object.keys(own.metered)).toEqual(['api_calls']);
    expect(own.metered.api_calls).toMatchObject({ used: '0', state: 'ok' });
    expect(own.totals).toEqual([
      { metric: 'exports', quantity: '1000000', events: 1 },
      { metric: 'storage_gb', quantity: '1000000', events: 1 },
    ]);

    // A customer without a plan has no allowance at all: its usage is only counted.
    const bare = await createCustomer(t);
    await use(bare, 1_000_000);
    await settle();
    expect(await usageEvents(bare)).toEqual([]);
    const bareUsage = await ownUsage(bare);
    expect(bareUsage.metered).toEqual({});
    const month = new Date(clock);
    expect(bareUsage.billing_period).toEqual({
      start: new Date(Date.UTC(month.getUTCFullYear(), month.getUTCMonth(), 1)).toISOString(),
      end: new Date(Date.UTC(month.getUTCFullYear(), month.getUTCMonth() + 1, 1)).toISOString(),
    });
  });

  test('when the watch is left to run on its own, then the crossing is announced without anyone asking', async () => {
    const c = await customerWith('block');
    await use(c, 600);
    const end = Date.now() + 20_000;
    while ((await usageEvents(c)).length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    expect(summary(await usageEvents(c))).toEqual(['threshold 50']);
  });
});

describe('GET /api/usage and the admin usage', () => {
  test('when a period is asked for, then the totals are over it and the metered limits over the billing period; every earlier field is kept', async () => {
    const c = await customerWith('block');
    await use(c, 850);
    await settle();
    const yesterday = new Date(clock - DAY).toISOString().slice(0, 10);
    for (const body of [
      await ownUsage(c, t, `?from=${yesterday}&to=${yesterday}T12:00:00Z`),
      await adminUsage(c.id, `?from=${yesterday}&to=${yesterday}T12:00:00Z`),
    ]) {
      expect(Object.keys(body)).toEqual(['customer_id', 'from', 'to', 'group_by', 'totals', 'billing_period', 'metered']);
      expect(body.totals).toEqual([]);
      expect(body.billing_period).toEqual({ start: c.subscription.current_period_start, end: c.subscription.current_period_end });
      expect(body.metered.api_calls).toMatchObject({ used: '850', percent: 85, thresholds_crossed: [50, 80], state: 'warn' });
    }
    const byDay = await ownUsage(c, t, '?group_by=day');
    expect(byDay.totals).toEqual([{ day: new Date(clock).toISOString().slice(0, 10), metric: 'api_calls', quantity: '850', events: 1 }]);
    expect(byDay.metered.api_calls.used).toBe('850');
  });

  test('when a deal changes without the watch being told, then the admin usage shows it at once, the customer’s own once its cached deal is 30 s old', async () => {
    let qclock = Date.now();
    const q = await createTestApp(ENV, { now: () => qclock });
    try {
      const c = await customerWith('block', { via: q });
      await use(c, 600, q);
      expect((await ownUsage(c, q)).metered.api_calls).toMatchObject({ allowance: 1000, state: 'warn' });
      const smaller = await createPlan(q, { entitlements: { features: [], limits: { api_calls: 500 }, thresholds: [50, 80, 100] } });
      await request(q.app)
        .patch(`/api/customers/${c.id}/subscriptions/${c.subscription.id}`)
        .set('Authorization', `Bearer ${q.adminToken}`)
        .send({ plan: smaller })
        .expect(200);
      const fresh = (await request(q.app).get(`/api/customers/${c.id}/usage`).set('Authorization', `Bearer ${q.adminToken}`).expect(200)).body as Json;
      expect(fresh.metered.api_calls).toMatchObject({ allowance: 500, state: 'blocked' });
      expect((await ownUsage(c, q)).metered.api_calls).toMatchObject({ allowance: 1000, state: 'warn' });
      qclock += 30_000;
      expect((await ownUsage(c, q)).metered.api_calls).toEqual(fresh.metered.api_calls);
    } finally {
      await q.close();
    }
  });

  test('when the admin asks for a customer that does not exist, then 404 (control: an existing one answers)', async () => {
    const res = await request(t.app).get(`/api/customers/0193a5b0-0000-7000-8000-000000000000/usage`).set(admin);
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('NOT_FOUND');
    const c = await createCustomer(t);
    expect((await adminUsage(c.id)).metered).toEqual({});
  });
});

describe('two instances, a replay, a failed round, a crash, a changed deal', () => {
  test('when two instances ingest at once across every threshold, then each threshold and the exhaustion are announced exactly once (several rounds)', async () => {
    for (let round = 0; round < 5; round++) {
      const c = await customerWith(1.25);
      // 40 reports of 40 (1,600 in all), singles and batches, half through each instance, all at once.
      const sends = Array.from({ length: 40 }, (_, i) => {
        const via = i % 2 ? t2 : t;
        if (i % 4 < 2) return use(c, 40, via);
        return request(via.app)
          .post('/api/usage')
          .set('X-API-Key', c.apiKey)
          .send({ events: [10, 10, 10, 10].map((quantity) => ({ metric: 'api_calls', quantity, idempotency_key: key() })) })
          .expect(201);
      });
      // Both watches also check at the same moment, while the writes land.
      await Promise.all([...sends, t.c.thresholdWatch.checkNow(), t2.c.thresholdWatch.checkNow()]);
      await Promise.all([t.c.thresholdWatch.checkNow(), t2.c.thresholdWatch.checkNow()]);
      await settle();
      const events = await usageEvents(c);
      // Sorted: two instances' events of one millisecond have no order between them.
      expect(events.map((e) => (e.type === 'usage.threshold_crossed' ? `threshold ${e.data.threshold_percent}` : 'exhausted')).sort()).toEqual([
        'exhausted',
        'threshold 100',
        'threshold 50',
        'threshold 80',
      ]);
      // Each announced at a quantity that had reached it, and no more than was reported.
      for (const e of events) {
        const at = e.type === 'usage.threshold_crossed' ? e.data.threshold_percent * 10 : 1250;
        expect(Number(e.data.quantity)).toBeGreaterThanOrEqual(at);
        expect(Number(e.data.quantity)).toBeLessThanOrEqual(1600);
      }
      const rows = await t.db('usage_threshold_crossings').where({ customer_id: c.id });
      expect(rows).toHaveLength(4);
      expect(new Set(rows.map((r) => r.event_id))).toEqual(new Set(events.map((e) => e.id)));
      expect(await meteredNow(c)).toMatchObject({ used: '1600', state: 'blocked' });
    }
  });

  test('when a batch is replayed (same idempotency keys), then it stores nothing, marks nothing and announces nothing', async () => {
    const c = await customerWith('block');
    const events = [300, 300].map((quantity) => ({ metric: 'api_calls', quantity, idempotency_key: key() }));
    await request(t.app).post('/api/usage').set('X-API-Key', c.apiKey).send({ events }).expect(201);
    await settle();
    expect(summary(await usageEvents(c))).toEqual(['threshold 50']);
    // The replay, through the other instance (its cache has never seen this customer): 200, nothing new.
    const replay = await request(t2.app).post('/api/usage').set('X-API-Key', c.apiKey).send({ events });
    expect(replay.status).toBe(200);
    expect(replay.body).toMatchObject({ created: 0, replayed: 2 });
    await settle();
    expect(summary(await usageEvents(c))).toEqual(['threshold 50']);
    expect(await meteredNow(c)).toMatchObject({ used: '600' });
    // Control: a new event through that instance is checked (80% now).
    await use(c, 200, t2);
    await settle();
    expect(summary(await usageEvents(c)).sort()).toEqual(['threshold 50', 'threshold 80']);
  });

  test('when a customer’s announcement cannot commit, then it is not announced, it is logged, the others of the round are, and the next round announces it once', async () => {
    const faults = eventFaults(t.db);
    await faults.install();
    try {
      const c = await customerWith('block');
      const other = await customerWith('block');
      await faults.fail('usage.threshold_crossed', c.id);
      await Promise.all([use(c, 600), use(other, 600)]);
      await expect(t.c.thresholdWatch.checkNow()).rejects.toThrow(/injected failure at commit/);
      expect(await usageEvents(c)).toEqual([]);
      expect(await t.db('usage_threshold_crossings').where({ customer_id: c.id })).toEqual([]);
      expect(t.logs.some((l) => l.includes('usage threshold announcement failed') && l.includes(c.id))).toBe(true);
      // Control: the other customer, checked in the same round, was announced.
      expect(summary(await usageEvents(other))).toEqual(['threshold 50']);
      // The pair stayed marked: once the fault is gone the next round announces it, without new usage.
      await faults.clear();
      await t.c.thresholdWatch.checkNow();
      await settle();
      expect(summary(await usageEvents(c))).toEqual(['threshold 50']);
      expect(summary(await usageEvents(other))).toEqual(['threshold 50']);
    } finally {
      await faults.uninstall();
    }
  });

  test('when a round cannot read the totals, then it is logged and every pair it took is checked again by the next round', async () => {
    const c = await customerWith('block');
    const other = await customerWith('allow');
    // A watch of its own over the real deals, events and crossings, whose first read of the totals fails.
    let reads = 0;
    const watch = createThresholdWatch({
      db: t.db,
      deals: t.c.deals,
      usage: {
        periodTotals: (q) => (++reads === 1 ? Promise.reject(new Error('the database is away')) : t.c.usage.periodTotals(q)),
      },
      crossings: createCrossingsRepository(),
      events: t.c.events,
      logger: t.c.logger,
      now: () => clock,
    });
    // Their usage, written by an instance that did not check it; this watch is told of it.
    const writer = createUsageService({ db: t.db, repo: createUsageRepository(), customers: t.c.customers, stripeEnabled: false, now: () => clock });
    await writer.recordOne(c.id, { metric: 'api_calls', quantity: '900', idempotencyKey: key() });
    await writer.recordOne(other.id, { metric: 'api_calls', quantity: '500', idempotencyKey: key() });
    watch.mark([
      { customerId: c.id, metric: 'api_calls' },
      { customerId: other.id, metric: 'api_calls' },
    ]);
    await expect(watch.checkNow()).rejects.toThrow('the database is away');
    expect(t.logs.some((l) => l.includes('usage threshold check failed'))).toBe(true);
    expect(await usageEvents(c)).toEqual([]);
    await watch.checkNow();
    await watch.stop();
    expect(summary(await usageEvents(c))).toEqual(['threshold 50', 'threshold 80']);
    expect(summary(await usageEvents(other))).toEqual(['threshold 50']);
  });

  test('when an instance stopped between a write’s commit and its check, then the metric’s next write announces the crossing', async () => {
    const c = await customerWith('block');
    // A write committed by an instance that never checked it (no watch told): 600 of 1,000.
    const crashed = createUsageService({ db: t.db, repo: createUsageRepository(), customers: t.c.customers, stripeEnabled: false, now: () => clock });
    await crashed.recordOne(c.id, { metric: 'api_calls', quantity: '600', idempotencyKey: key() });
    await settle();
    expect(await usageEvents(c)).toEqual([]);
    await use(c, 1, t2);
    await settle();
    const events = await usageEvents(c);
    expect(summary(events)).toEqual(['threshold 50']);
    expect(events[0]!.data.quantity).toBe('601');
  });

  test('when a customer’s deal changes during the period, then it is checked at once against the new allowance', async () => {
    const c = await customerWith('block');
    await use(c, 600);
    await settle();
    expect(summary(await usageEvents(c))).toEqual(['threshold 50']);
    // A smaller deal: 500 api_calls with a tolerance of 1.1. (The overrides API and plan changes tell the watch so.)
    const smaller = await createPlan(t, { entitlements: { features: [], limits: { api_calls: 500 }, overage: { api_calls: 1.1 }, thresholds: [50, 80, 100] } });
    await request(t.app).patch(`/api/customers/${c.id}/subscriptions/${c.subscription.id}`).set(admin).send({ plan: smaller }).expect(200);
    t.c.thresholdWatch.customerChanged(c.id);
    await settle();
    const events = await usageEvents(c);
    expect(summary(events)).toEqual(['threshold 50', 'threshold 50', 'threshold 80', 'threshold 100', 'exhausted 600']);
    expect(events.slice(1).map((e) => e.data.allowance)).toEqual([500, 500, 500, 500]);
    expect(events[4]!.data).toMatchObject({ overage: 1.1, blocks_at: '550' });
    expect(await meteredNow(c)).toMatchObject({ allowance: 500, used: '600', percent: 120, state: 'blocked' });
  });
});

describe('the next period', () => {
  test('when the billing period moves on, then the thresholds start over: announced again, against the new period', async () => {
    let later = Date.now();
    const p = await createTestApp(ENV, { now: () => later });
    try {
      const c = await customerWith('block', { via: p });
      await use(c, 850, p);
      await settle(p);
      expect(summary(await usageEvents(c))).toEqual(['threshold 50', 'threshold 80']);
      const first = await ownUsage(c, p);

      // 31 days on: the (local) subscription has renewed; nothing of the last period counts.
      later += 31 * DAY;
      const fresh = await ownUsage(c, p);
      expect(fresh.billing_period.start).toBe(first.billing_period.end);
      expect(fresh.metered.api_calls).toMatchObject({ used: '0', thresholds_crossed: [], state: 'ok' });

      await use(c, 600, p);
      await settle(p);
      const events = await usageEvents(c);
      expect(summary(events)).toEqual(['threshold 50', 'threshold 80', 'threshold 50']);
      expect(events[2]!.data).toMatchObject({ quantity: '600', period_start: fresh.billing_period.start, period_end: fresh.billing_period.end, state: 'warn' });
      expect(events[0]!.data.period_start).toBe(first.billing_period.start);
      expect((await ownUsage(c, p)).metered.api_calls).toMatchObject({ used: '600', thresholds_crossed: [50], state: 'warn' });
    } finally {
      await p.close();
    }
  });
});

describe('billing-admin usage show', () => {
  let s: Service;
  beforeAll(async () => {
    s = await startService(ENV);
  });
  afterAll(() => s.close());

  test('when a customer has metered limits, then a table shows each: allowance, used, percent, crossed, overage, blocks at, state', async () => {
    const c = await customerWith(1.25);
    await use(c, 1100);
    const r = await cli(['usage', 'show', c.id], { env: { BILLING_API_URL: s.url, ADMIN_API_TOKEN: s.t.adminToken } });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        'METRIC     QUANTITY  EVENTS',
        'api_calls      1100       1',
        'METRIC     ALLOWANCE  USED  PERCENT  CROSSED       OVERAGE  BLOCKS AT  STATE',
        'api_calls       1000  1100     110%  50% 80% 100%  1.25          1250  over_tolerated',
        '',
      ].join('\n'),
    );
    expect(r.stderr).toContain(`metered limits, billing period ${c.subscription.current_period_start} to ${c.subscription.current_period_end}`);
    // Control: without metered limits, only the totals.
    const bare = await createCustomer(t);
    const plain = await cli(['usage', 'show', bare.id], { env: { BILLING_API_URL: s.url, ADMIN_API_TOKEN: s.t.adminToken } });
    expect(plain.stdout).toBe('');
    expect(plain.stderr).not.toContain('metered limits');
  });
});
