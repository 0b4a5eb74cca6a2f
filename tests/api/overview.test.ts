/**
 * GET /api/reports/overview: the console's first numbers, on a database of its own so every count is
 * known exactly.
 */
import request from 'supertest';
import { createIsolatedTestApp } from '../helpers/fresh-database';
import { createCustomer, createPlan, deleteCustomer, subscribe } from '../helpers/factories';
import { createTestApp } from '../helpers/test-app';

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
