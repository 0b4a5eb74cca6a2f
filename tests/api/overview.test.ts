/**
 * GET /api/reports/overview: the console's first numbers, on a database of its own so every count is
 * known exactly.
 */
import request from 'supertest';
import { createIsolatedTestApp } from '../helpers/fresh-database';
import { createCustomer, createPlan, deleteCustomer, subscribe } from '../helpers/factories';
import { createTestApp } from '../helpers/test-app';
import { licenseCountsSql, licenseState, pickSubscription } from '../../src/modules/licenses/license-status';
import type { Subscription } from '../../src/modules/subscriptions/subscription-types';
import { uuidv7 } from '../../src/lib/ids';

const DAY = 86_400_000;

test('when customers have subscriptions in every state, then the overview counts customers, subscriptions and licenses by the license rule', async () => {
  const iso = await createIsolatedTestApp('overview', { LICENSE_GRACE_DAYS: '14' });
  const { t } = iso;
  try {
    const plan = await createPlan(t);
    const set = (id: string, patch: Record<string, unknown>) => t.db('subscriptions').where({ id }).update(patch);
    const now = Date.now();
    const future = new Date(now + 10 * DAY);

    const active = await subscribe(t, { plan });
    await set(active.id, { status: 'active', current_period_end: future });
    const trialing = await subscribe(t, { plan });
    await set(trialing.id, { status: 'trialing', current_period_end: null, trial_end: future });
    const grace = await subscribe(t, { plan });
    await set(grace.id, { status: 'past_due', payment_failing_since: new Date(now - 3 * DAY) });
    const lapsed = await subscribe(t, { plan });
    await set(lapsed.id, { status: 'unpaid', payment_failing_since: new Date(now - 30 * DAY) });
    const canceled = await subscribe(t, { plan });
    await set(canceled.id, { status: 'canceled', canceled_at: new Date(now - DAY) });
    // A paid subscription wins over a newer canceled one (pickSubscription).
    const both = await subscribe(t, { plan });
    await set(both.id, { status: 'active', current_period_end: future });
    const newer = await subscribe(t, { plan, customer: both.customer });
    await set(newer.id, { status: 'canceled' });
    await createCustomer(t); // no subscription
    const gone = await subscribe(t, { plan });
    await set(gone.id, { status: 'active', current_period_end: future });
    await deleteCustomer(t, gone.customerId);

    const res = await request(t.app).get('/api/reports/overview').set('Authorization', `Bearer ${t.adminToken}`);
    expect(res.status).toBe(200);
    expect(res.body.customers).toEqual({ active: 7, deleted: 1 });
    // The deleted customer's subscription is canceled with it.
    const subs = await t.db('subscriptions').select('status').count({ n: '*' }).groupBy('status');
    const expectedSubs = Object.fromEntries(
      ['incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due', 'canceled', 'unpaid', 'paused'].map((s) => [s, 0]),
    );
    for (const r of subs) expectedSubs[r.status as string] = Number(r.n);
    expect(res.body.subscriptions).toEqual(expectedSubs);
    expect(res.body.subscriptions).toMatchObject({ trialing: 1, past_due: 1, unpaid: 1 });
    expect(res.body.licenses).toEqual({ active: 2, trialing: 1, grace: 1, expired: 2, none: 1 });
  } finally {
    await iso.close();
  }
});

test('when the outbox holds waiting, due and parked events, then the overview gives the forwarding report’s backlog, read from the outbox alone', async () => {
  const iso = await createIsolatedTestApp('overview_outbox');
  const { t } = iso;
  try {
    const customer = await createCustomer(t);
    const now = Date.now();
    const row = (i: number, over: Record<string, unknown>) => ({
      id: uuidv7(),
      customer_id: customer.id,
      idempotency_key: `outbox-${i}`,
      occurred_month: new Date(Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), 1)),
      occurred_at: new Date(now - 3600_000),
      metric: 'api_calls',
      quantity: '1',
      state: 'pending',
      ...over,
    });
    await t.db('usage_outbox').insert([
      row(0, { created_at: new Date(now - 900_000), next_attempt_at: new Date(now - 1000) }), // the oldest, due
      row(1, { created_at: new Date(now - 60_000), next_attempt_at: new Date(now + 600_000) }),
      row(2, { created_at: new Date(now - 30_000), next_attempt_at: new Date(now + 600_000) }),
      ...Array.from({ length: 7 }, (_v, k) => row(10 + k, { state: 'failed', attempts: 8, next_attempt_at: null, last_error: `refused ${k}` })),
      row(20, { state: 'sent', sent_at: new Date(now - 5000), next_attempt_at: null }),
    ] as never);
    const auth = { Authorization: `Bearer ${t.adminToken}` };
    const overview = await request(t.app).get('/api/reports/overview').set(auth);
    const report = await request(t.app).get('/api/reports/forwarding').set(auth);
    expect([overview.status, report.status]).toEqual([200, 200]);
    const { oldest_pending_age_seconds: age, ...rest } = overview.body.forwarding;
    expect(rest).toEqual({
      stripe_enabled: report.body.stripe_enabled,
      pending: 3,
      due: 1,
      failed: 7,
      oldest_pending_at: report.body.oldest_pending_at,
      recent_failures: report.body.recent_failures.slice(0, 5),
    });
    expect(report.body).toMatchObject({ pending: 3, due: 1, failed: 7 });
    expect(new Date(overview.body.forwarding.oldest_pending_at).getTime()).toBe(now - 900_000);
    expect(age).toBeGreaterThanOrEqual(899);
    expect(Math.abs(age - report.body.oldest_pending_age_seconds)).toBeLessThan(5);
    // Five of the seven parked events (ids made in one millisecond have no order among them).
    const errors = overview.body.forwarding.recent_failures.map((f: { last_error: string }) => f.last_error);
    expect(new Set(errors).size).toBe(5);
    for (const e of errors) expect(e).toMatch(/^refused [0-6]$/);
  } finally {
    await iso.close();
  }
});

test('when licenses are counted in SQL, then every customer counts as licenseState(pickSubscription(...)) says, at and around every boundary', async () => {
  // The overview counts in PostgreSQL (licenseCountsSql); the rule is the JavaScript. Generated
  // subscriptions, with times written to the microsecond at and within a second of each boundary
  // (period end, grace end, failing since + grace, the updated_at fallback), for several clocks and
  // grace lengths, must count the same both ways; and the route answers the same at its own clock.
  const NOW = Date.UTC(2026, 11, 7, 12, 0, 0, 400);
  const iso = await createIsolatedTestApp('overview_rule', { LICENSE_GRACE_DAYS: '14' }, { now: () => NOW });
  const { t } = iso;
  try {
    let seed = 42; // mulberry32: a seeded generator whose low bits do not cycle
    const rand = (n: number) => {
      seed = (seed + 0x6d2b79f5) | 0;
      let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
      return ((x ^ (x >>> 14)) >>> 0) % n;
    };
    const pick = <T>(list: readonly T[]) => list[rand(list.length)]!;
    const offsetsSec = [-1.5, -1, -0.999999, -0.6, -0.000001, 0, 0.000001, 0.4, 0.6, 0.999999, 1, 1.5];
    const graces = [0, 7, 14];
    // A time near one boundary: now, or now less a grace (a failing start or a lapsed period end).
    const near = () => {
      const shift = pick([0, ...graces.map((g) => -g * 86_400), 10 * 86_400, -90 * 86_400]);
      const micros = Math.round((NOW / 1000 + shift + pick(offsetsSec)) * 1e6);
      const whole = Math.floor(micros / 1e6);
      return `${new Date(whole * 1000).toISOString().slice(0, 19)}.${String(micros - whole * 1e6).padStart(6, '0')}Z`;
    };
    const maybe = () => (rand(4) === 0 ? null : near());
    const plan = await createPlan(t);
    const planId = (await t.db('plans').where({ code: plan }).first('id'))!.id;
    const statuses = ['incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due', 'canceled', 'unpaid', 'paused'] as const;
    for (let c = 0; c < 600; c++) {
      const customer = await t
        .db('customers')
        .insert({ id: uuidv7(), email: `rule${c}@example.com`, company_name: `Rule ${c}`, status: c % 50 === 0 ? 'deleted' : 'active' } as never)
        .returning('id');
      const customerId = (customer[0] as { id: string }).id;
      if (c % 25 === 0) continue; // some have no subscription
      for (let k = 0, n = 1 + rand(3); k < n; k++) {
        await t.db('subscriptions').insert({
          id: uuidv7(),
          customer_id: customerId,
          plan_id: planId,
          stripe_subscription_id: `sub_rule_${c}_${k}`,
          status: pick(statuses),
          current_period_start: maybe(),
          current_period_end: maybe(),
          trial_end: maybe(),
          payment_failing_since: maybe(),
          updated_at: near(),
        } as never);
      }
    }
    const rows = await t
      .db('subscriptions as s')
      .join('customers as c', 'c.id', 's.customer_id')
      .where('c.status', 'active')
      .orderBy([
        { column: 's.customer_id', order: 'asc' },
        { column: 's.id', order: 'desc' },
      ])
      .select('s.customer_id', 's.status', 's.current_period_start', 's.current_period_end', 's.trial_end', 's.payment_failing_since', 's.updated_at');
    const byCustomer = new Map<string, Subscription[]>();
    for (const r of rows) {
      const sub = {
        status: r.status,
        currentPeriodStart: r.current_period_start,
        currentPeriodEnd: r.current_period_end,
        trialEnd: r.trial_end,
        paymentFailingSince: r.payment_failing_since,
        updatedAt: r.updated_at,
      } as Subscription;
      byCustomer.set(r.customer_id as string, [...(byCustomer.get(r.customer_id as string) ?? []), sub]);
    }
    const byRule = (nowSec: number, graceDays: number) => {
      const counts: Record<string, number> = {};
      for (const subs of byCustomer.values()) {
        const status = licenseState(pickSubscription(subs)!, nowSec, graceDays).status;
        counts[status] = (counts[status] ?? 0) + 1;
      }
      return counts;
    };
    const bySql = async (nowSec: number, graceDays: number) => {
      const q = licenseCountsSql(nowSec, graceDays);
      const res = await t.db.raw<{ rows: { license: string; n: number }[] }>(q.sql, q.bindings);
      return Object.fromEntries(res.rows.map((r) => [r.license, r.n]));
    };
    let compared = 0;
    for (const graceDays of graces) {
      for (const shift of [-1, 0, 1]) {
        const nowSec = Math.floor(NOW / 1000) + shift;
        const expected = byRule(nowSec, graceDays);
        expect(await bySql(nowSec, graceDays)).toEqual(expected);
        compared += 1;
      }
    }
    expect(compared).toBe(9);
    // The cases reach every status both ways, and sit on the boundaries (else the test proves little).
    expect(Object.keys(byRule(Math.floor(NOW / 1000), 14)).sort()).toEqual(['active', 'expired', 'grace', 'trialing']);
    expect(byCustomer.size).toBeGreaterThan(500);

    const res = await request(t.app).get('/api/reports/overview').set('Authorization', `Bearer ${t.adminToken}`);
    expect(res.status).toBe(200);
    const expected = byRule(Math.floor(NOW / 1000), 14);
    expect(res.body.licenses).toEqual({
      active: expected.active ?? 0,
      trialing: expected.trialing ?? 0,
      grace: expected.grace ?? 0,
      expired: expected.expired ?? 0,
      none: Array.from({ length: 600 }, (_v, c) => c).filter((c) => c % 25 === 0 && c % 50 !== 0).length, // active, never subscribed
    });
  } finally {
    await iso.close();
  }
});

describe('GET /api/reports/preflight: the production checklist, from the console', () => {
  const production = {
    NODE_ENV: 'production',
    ADMIN_API_TOKEN: 'a3f1c9e27b4d8f60c5e1a9b7d3f2e8c4a6b0d9e1f7c3a5b8d2e4f6a0c1b3d5e7',
    STRIPE_SECRET_KEY: 'rk_live_abc123',
    STRIPE_WEBHOOK_SECRET: 'whsec_abc',
    METRICS_TOKEN: 'f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f',
    TRUST_PROXY: '1',
    LICENSE_SIGNING_KEYS: '{"kty":"OKP","crv":"Ed25519","d":"nBdKOX2FAqvI-cZTNdlgYfWITW4rsZfrTaqLakYxlGc","x":"yO4iBXcbZAqpwKMIqBKe4rk962muih682zz3cGCr0Mg"}',
    LICENSE_JWKS_URL: 'https://billing.example.com/.well-known/jwks.json',
    WEBHOOK_SECRETS_KEY: 'abababababababababababababababababababababababababababababababab',
    LOG_LEVEL: 'info',
  };
  const secrets = [
    production.ADMIN_API_TOKEN,
    production.STRIPE_SECRET_KEY,
    production.STRIPE_WEBHOOK_SECRET,
    production.METRICS_TOKEN,
    'nBdKOX2FAqvI',
    production.WEBHOOK_SECRETS_KEY,
  ];

  test('when the service runs with production settings, then every check passes but npm audit, which says where to run it; no secret is in the answer', async () => {
    const t = await createTestApp(production);
    try {
      const res = await request(t.app).get('/api/reports/preflight').set('Authorization', `Bearer ${production.ADMIN_API_TOKEN}`);
      expect(res.status).toBe(200);
      const failed = (res.body.checks as { name: string; ok: boolean; detail: string }[]).filter((c) => !c.ok);
      expect(failed).toEqual([{ name: 'npm audit: no high-severity advisories', ok: false, detail: expect.stringMatching(/npm run preflight/) }]);
      expect(res.body.checks).toContainEqual({ name: 'database reachable, migrations current', ok: true, detail: expect.any(String) });
      expect([res.body.passed, res.body.failed]).toEqual([res.body.checks.length - 1, 1]);
      for (const s of secrets) expect(res.text).not.toContain(s);
      // Three instances need Redis: this one has none, and the check says so.
      const three = await request(t.app).get('/api/reports/preflight?instances=3').set('Authorization', `Bearer ${production.ADMIN_API_TOKEN}`);
      expect(three.body.checks).toContainEqual({ name: 'shared rate limits', ok: false, detail: expect.stringMatching(/REDIS_URL/) });
    } finally {
      await t.close();
    }
  });

  test('when it runs with development settings, then the checks that fail say how to fix them', async () => {
    const t = await createTestApp();
    try {
      const res = await request(t.app).get('/api/reports/preflight').set('Authorization', `Bearer ${t.adminToken}`);
      expect(res.status).toBe(200);
      expect(res.body.checks).toContainEqual({ name: 'NODE_ENV is production', ok: false, detail: 'set NODE_ENV=production' });
      expect(res.body.failed).toBeGreaterThan(0);
      expect(res.text).not.toContain(t.adminToken);
    } finally {
      await t.close();
    }
  });
});
