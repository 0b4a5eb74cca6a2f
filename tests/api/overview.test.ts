/**
 * GET /api/reports/overview: the console's first numbers, on a database of its own so every count is
 * known exactly.
 */
import request from 'supertest';
import { createIsolatedTestApp } from '../helpers/fresh-database';
import { createCustomer, createPlan, deleteCustomer, subscribe } from '../helpers/factories';

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
