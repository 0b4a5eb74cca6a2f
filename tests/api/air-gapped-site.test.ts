/**
 * A site with no network, end to end: the instance (the real client package, offline, with its
 * durable queue) reports usage for weeks; bundles are carried out by hand and uploaded by a
 * connected machine of the customer and by the vendor's support, some twice, one lost and found
 * later, one tampered with on the way; receipts are carried back and imported. Then the events
 * stored and billed (meter events for the current period, invoice items for late usage, at the fake
 * Stripe through the real stripe-node client) are compared with those reported.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Stripe from 'stripe';
import request from 'supertest';
import { BillingClient } from '../../packages/client';
import { STRIPE_API_VERSION, stripeHostOptions } from '../../src/stripe/stripe-client';
import { createCustomer, createPlan, subscribe } from '../helpers/factories';
import { startStripeApp, type StripeApp } from '../helpers/stripe-app';
import { clearPendingForwarding } from '../helpers/forwarding-state';

const DAY = 86_400_000;
const METRICS = ['api_calls', 'storage_gb'] as const;

let app: StripeApp;
let stripe: Stripe;
let dir: string;

beforeAll(async () => {
  app = await startStripeApp({ USAGE_METRICS: METRICS.join(','), FORWARDER_BACKOFF_BASE_MS: '1', FORWARDER_BACKOFF_MAX_MS: '1' });
  stripe = new Stripe('sk_test_airgapped', { apiVersion: STRIPE_API_VERSION, ...stripeHostOptions(app.stripe.url), maxNetworkRetries: 0 });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'air-gapped-'));
  fs.chmodSync(dir, 0o700);
  // Only this file's events and true-ups are billed by the passes below.
  await clearPendingForwarding(app.t.db);
  await app.t.db('usage_true_ups').where({ state: 'pending' }).update({ state: 'local', next_attempt_at: null });
});
afterAll(async () => {
  await app.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A plan billed in Stripe: a base price and a metered price per metric (0.05 and 25 cents a unit). */
async function meteredPlan(): Promise<string> {
  const product = `prod_${randomBytes(4).toString('hex')}`;
  const base = await stripe.prices.create({ currency: 'usd', unit_amount: 4900, recurring: { interval: 'month' }, product });
  const prices: Record<string, string> = {};
  for (const [metric, unit] of [
    ['api_calls', '0.05'],
    ['storage_gb', '25'],
  ] as const) {
    const meter = await stripe.billing.meters.create({ display_name: metric, event_name: metric, default_aggregation: { formula: 'sum' } });
    prices[metric] = (
      await stripe.prices.create({
        currency: 'usd',
        unit_amount_decimal: Stripe.Decimal.from(unit),
        recurring: { interval: 'month', usage_type: 'metered', meter: meter.id },
        product,
      })
    ).id;
  }
  return createPlan(app.t, { stripe_price_id: base.id, metered_prices: prices });
}

/** Sums of decimal strings, exactly (millionths). */
const micros = (q: string | number) => {
  const [w, f = ''] = String(q).split('.');
  return BigInt(w!) * 1_000_000n + BigInt(f.padEnd(6, '0').slice(0, 6));
};

test('when an air-gapped site reports for four weeks and its bundles travel by hand (twice, one lost and found, one tampered), then every event is stored once and billed once: meter events for this period, invoice items for the late ones', async () => {
  const { t, admin } = app;
  const plan = await meteredPlan();
  const c = await createCustomer(t);
  await subscribe(t, { customer: c, plan });
  // The customer is weeks old and its subscription renewed 14 days ago: what happened before is invoiced.
  await t.db.raw('update customers set created_at = ? where id = ?', [new Date(Date.now() - 60 * DAY), c.id]);
  const periodStart = new Date(Date.now() - 14 * DAY);
  await t.db('subscriptions').where({ customer_id: c.id }).update({ current_period_start: periodStart });

  // The site: the client package with no network at all.
  const jwks = (await request(t.app).get('/.well-known/jwks.json').expect(200)).body;
  const fingerprint = `site-${randomBytes(6).toString('hex')}`;
  const site = new BillingClient({
    offline: true,
    queueDir: path.join(dir, 'queue'),
    license: { fingerprint, customerId: c.id, dir: path.join(dir, 'license'), trustedKeys: jwks, issuer: t.c.config.license.issuer },
  });

  // 1. Activation request carried to the vendor; the offline license carried back.
  const ask = await site.activationRequest();
  expect(ask.customer_id).toBe(c.id);
  const activated = await request(t.app).post(`/api/customers/${c.id}/licenses`).set(admin).send(ask.body).expect(201);
  expect((await site.verifyLicense(activated.body.license)).claims.instance).toBe(fingerprint);

  // 2. Four weeks of usage, reported as it happens (5,000 events, two metrics, 28 days back to now).
  const reported: { key: string; metric: string; quantity: string; at: Date }[] = [];
  const report = async (n: number, fromDaysAgo: number, toDaysAgo: number) => {
    const events = Array.from({ length: n }, (_, i) => {
      const at = new Date(Date.now() - (fromDaysAgo - ((fromDaysAgo - toDaysAgo) * i) / n) * DAY - 60_000);
      const metric = METRICS[i % 7 === 0 ? 1 : 0];
      const quantity = metric === 'storage_gb' ? `${(i % 4) + 1}.25` : String((i % 3) + 1);
      return { metric, quantity, occurred_at: at, idempotency_key: `site-${reported.length + i}` };
    });
    await site.reportUsage(events);
    for (const e of events) reported.push({ key: e.idempotency_key, metric: e.metric, quantity: e.quantity, at: e.occurred_at });
  };
  const file = (name: string) => path.join(dir, name);
  const upload = (text: string, by: 'customer' | 'admin') =>
    by === 'customer'
      ? request(t.app).post('/api/usage/bundles').set('X-API-Key', c.apiKey).send({ bundle: text })
      : request(t.app).post(`/api/customers/${c.id}/usage-bundles`).set(admin).send({ bundle: text });
  const storedCount = async () => Number((await t.db('usage_events').where({ customer_id: c.id }).count<{ n: string }[]>({ n: '*' }))[0]!.n);

  await report(2000, 28, 20);
  const b1 = await site.exportUsage(file('b1.jws'));
  expect([b1.seq, b1.events, b1.previous]).toEqual([1, 2000, null]);
  // Uploaded by a connected machine, then again by support from a copy sent by mail: one receipt.
  const r1 = await upload(fs.readFileSync(file('b1.jws'), 'utf8'), 'customer').expect(200);
  expect(r1.body.receipt_claims).toMatchObject({ seq: 1, events: 2000, applied: 2000, duplicates: 0, rejected: [], missing_seq: [] });
  const r1again = await upload(fs.readFileSync(file('b1.jws'), 'utf8'), 'admin').expect(200);
  expect(r1again.body.receipt).toBe(r1.body.receipt);
  fs.writeFileSync(file('r1.json'), JSON.stringify(r1.body));

  // 3. More usage; bundle 2 re-exports what no receipt acknowledged yet, and is lost on the way.
  await report(1000, 20, 12);
  const b2 = await site.exportUsage(file('b2.jws'));
  expect([b2.seq, b2.events, b2.previous]).toEqual([2, 3000, b1.digest]);

  // 4. The first receipt comes back: its 2,000 events leave the queue, the later 1,000 stay.
  const i1 = await site.importReceipt(file('r1.json'));
  expect([i1.acknowledged, i1.deadLettered, i1.license?.claims.instance]).toEqual([2000, 0, fingerprint]);
  expect((await site.queued()).events).toBe(1000);

  // 5. Two more weeks; bundle 3 is tampered with on the way (one quantity raised, the signature kept): refused, nothing stored.
  await report(2000, 12, 0);
  const b3 = await site.exportUsage(file('b3.jws'));
  expect([b3.seq, b3.events, b3.previous]).toEqual([3, 3000, b2.digest]);
  const b3text = fs.readFileSync(file('b3.jws'), 'utf8').trim();
  const [h, p, s] = b3text.split('.');
  const payload = JSON.parse(Buffer.from(p!, 'base64url').toString('utf8'));
  payload.events[5].quantity = '999999';
  const tampered = `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`;
  const before = await storedCount();
  const refused = await upload(tampered, 'admin').expect(422);
  expect(refused.body.error.code).toBe('BUNDLE_SIGNATURE_INVALID');
  expect(await storedCount()).toBe(before);

  // The genuine file: applied; its receipt names the lost bundle 2, and the vendor is told.
  const r3 = await upload(b3text, 'admin').expect(200);
  expect(r3.body.receipt_claims).toMatchObject({ seq: 3, events: 3000, applied: 3000, duplicates: 0, missing_seq: [2], previous_mismatch: false });
  expect((await upload(b3text, 'customer').expect(200)).body.receipt).toBe(r3.body.receipt);
  const gap = await t.db('events').where({ type: 'usage.bundle_gap', customer_id: c.id });
  expect(gap.map((e) => e.data)).toEqual([expect.objectContaining({ fingerprint, seq: 3, missing_seq: [2] })]);
  const view = (await request(t.app).get(`/api/customers/${c.id}/activations`).set(admin).expect(200)).body.data;
  expect(view.find((a: { fingerprint: string }) => a.fingerprint === fingerprint).bundles).toMatchObject({ last_seq: 3, missing_seq: [2] });

  // 6. Receipt 3 carried back: the queue is empty; receipt 1 again is a replay, refused, nothing changes.
  fs.writeFileSync(file('r3.json'), JSON.stringify(r3.body));
  const i3 = await site.importReceipt(file('r3.json'));
  expect([i3.acknowledged, i3.missingSeq]).toEqual([3000, [2]]);
  expect((await site.queued()).events).toBe(0);
  await expect(site.importReceipt(file('r1.json'))).rejects.toMatchObject({ code: 'REPLAYED' });
  expect(await site.deadLetters()).toEqual([]);

  // 7. Bundle 2 turns up on a USB stick: every event of it is already stored, and the gap closes.
  const r2 = await upload(fs.readFileSync(file('b2.jws'), 'utf8'), 'admin').expect(200);
  expect(r2.body.receipt_claims).toMatchObject({ seq: 2, events: 3000, applied: 0, duplicates: 3000, missing_seq: [] });
  const closed = (await request(t.app).get(`/api/customers/${c.id}/activations`).set(admin).expect(200)).body.data;
  expect(closed.find((a: { fingerprint: string }) => a.fingerprint === fingerprint).bundles).toMatchObject({ last_seq: 3, missing_seq: [] });

  // Stored: every reported event once, with its quantity.
  const rows = await t.db('usage_events').where({ customer_id: c.id }).select('idempotency_key', 'metric', 'quantity', 'state', 'id');
  expect(rows).toHaveLength(5000);
  const byKey = new Map(rows.map((r) => [r.idempotency_key, r]));
  for (const e of reported) expect([e.key, micros(byKey.get(e.key)!.quantity)]).toEqual([e.key, micros(e.quantity)]);

  // Billed: the forwarder sends this period's events as meter events; the true-up worker the late ones as invoice items.
  const late = reported.filter((e) => e.at < periodStart);
  const current = reported.filter((e) => e.at >= periodStart);
  expect(late.length).toBeGreaterThan(0);
  expect(current.length).toBeGreaterThan(0);
  for (const e of late) expect(byKey.get(e.key)!.state).toBe('t'); // late: a true-up bills it
  for (let pass = 0; pass < 200 && (await t.db('usage_outbox').where({ customer_id: c.id, state: 'pending' }).first()); pass++) await t.c.forwarder.runOnce();
  for (let pass = 0; pass < 20 && (await t.db('usage_true_ups').where({ customer_id: c.id, state: 'pending' }).first()); pass++)
    await t.c.trueUpWorker.runOnce();

  const ids = new Set(rows.map((r) => r.id));
  const lateIds = new Set(late.map((e) => byKey.get(e.key)!.id));
  const metered = [...app.stripe.held.values()].filter((m) => ids.has(m.identifier));
  expect(metered.some((m) => lateIds.has(m.identifier))).toBe(false);
  const trueUps = await t.db('usage_true_ups').where({ customer_id: c.id });
  expect(trueUps.every((r) => r.state === 'sent')).toBe(true);
  const items = [...app.stripe.invoiceItems.values()].filter((i) => trueUps.some((r) => r.stripe_invoice_item_id === i.id));
  expect(items).toHaveLength(trueUps.length);

  const metricOf = new Map(rows.map((r) => [r.id, r.metric]));
  for (const metric of METRICS) {
    const sum = (list: { metric: string; quantity: string }[]) => list.filter((e) => e.metric === metric).reduce((n, e) => n + micros(e.quantity), 0n);
    const meteredSum = metered.filter((m) => metricOf.get(m.identifier) === metric).reduce((n, m) => n + micros(m.payload.value!), 0n);
    const invoicedSum = items.filter((i) => i.metadata.metric === metric).reduce((n, i) => n + micros(String(i.quantity_decimal)), 0n);
    expect({ metric, meteredSum, invoicedSum }).toEqual({ metric, meteredSum: sum(current), invoicedSum: sum(late) });
  }
  await site.close();
});
