/**
 * Where signing keys come from (the development key under DATA_DIR, a file re-read on SIGHUP), and
 * when a subscription's payment started failing, as Stripe's webhooks tell it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Stripe from 'stripe';
import request from 'supertest';
import { generateSigningKey } from '../../src/modules/licenses/signing-keys';
import { reloadSecrets } from '../../src/secrets-reload';
import { createPlan, subscribe } from '../helpers/factories';
import { startFakeStripe } from '../helpers/fake-stripe';
import { createTestApp } from '../helpers/test-app';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'billing-license-'));
const kids = async (app: Parameters<typeof request>[0]) =>
  (await request(app).get('/.well-known/jwks.json').expect(200)).body.keys.map((k: { kid: string }) => k.kid);

test('when development runs without LICENSE_SIGNING_KEYS, then a key is generated once under DATA_DIR (0600) and reused', async () => {
  const dir = tmp();
  const env = { NODE_ENV: 'development', DATA_DIR: dir, LOG_PRETTY: 'false' };
  const first = await createTestApp(env);
  let kid: string;
  try {
    [kid] = await kids(first.app);
    expect(first.logs.join('')).toMatch(/generated a license signing key for development/);
  } finally {
    await first.close();
  }
  const file = path.join(dir, 'license-signing-key.json');
  expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  expect(JSON.parse(fs.readFileSync(file, 'utf8')).kid).toBe(kid);
  const second = await createTestApp(env);
  try {
    expect(await kids(second.app)).toEqual([kid]);
    expect(second.logs.join('')).toMatch(/using the development license signing key kept in this file/);
  } finally {
    await second.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('when the keys come from LICENSE_SIGNING_KEYS_FILE and it changes, then SIGHUP publishes and signs with the new keys', async () => {
  const dir = tmp();
  const file = path.join(dir, 'keys.json');
  const [old, next] = [generateSigningKey(), generateSigningKey()];
  fs.writeFileSync(file, JSON.stringify(old), { mode: 0o600 });
  const env = { LICENSE_SIGNING_KEYS_FILE: file };
  const t = await createTestApp(env);
  try {
    expect(await kids(t.app)).toEqual([old.kid]);
    // Rotation, step 2: the new key moves first, the old stays published.
    fs.writeFileSync(file, JSON.stringify([next, old]));
    const fullEnv = { ...env, NODE_ENV: 'test', DATABASE_URL: t.c.config.databaseUrl!, ADMIN_API_TOKEN: t.adminToken };
    expect(await reloadSecrets(fullEnv, t.c.config, t.c, t.c.logger)).toMatchObject({ ok: true, reloaded: ['LICENSE_SIGNING_KEYS'] });
    expect(await kids(t.app)).toEqual([next.kid, old.kid]);
    const s = await subscribe(t);
    const res = await request(t.app).get('/api/licenses').set('X-API-Key', s.customer.apiKey).expect(200);
    expect(JSON.parse(Buffer.from(res.body.license.split('.')[0], 'base64url').toString()).kid).toBe(next.kid);
    // A broken file keeps the running keys.
    fs.writeFileSync(file, '{"kty":"OKP"}');
    expect((await reloadSecrets(fullEnv, t.c.config, t.c, t.c.logger)).ok).toBe(false);
    expect(await kids(t.app)).toEqual([next.kid, old.kid]);
  } finally {
    await t.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('when Stripe moves a subscription to past_due, then unpaid, then active, then payment_failing_since is set once and cleared', async () => {
  const SECRET = 'whsec_license_grace';
  const stripe = await startFakeStripe();
  let clock = Date.now();
  const t = await createTestApp(
    { STRIPE_SECRET_KEY: 'sk_test_licenses', STRIPE_API_BASE: stripe.url, STRIPE_WEBHOOK_SECRET: SECRET, FORWARDER_ENABLED: 'false' },
    { now: () => clock },
  );
  const deliver = (status: string, stripeId: string) => {
    stripe.setSubscription(stripeId, { status });
    const payload = JSON.stringify(stripe.event('customer.subscription.updated', stripe.subscriptions.get(stripeId) as never, Math.floor(clock / 1000)));
    const header = Stripe.webhooks.generateTestHeaderString({ payload, secret: SECRET, timestamp: Math.floor(clock / 1000) });
    return request(t.app).post('/api/webhooks/stripe').set('Content-Type', 'application/json').set('Stripe-Signature', header).send(payload).expect(200);
  };
  try {
    const s = await subscribe(t, { plan: await createPlan(t, { stripe_price_id: `price_lic${Date.now()}` }) });
    const stripeId = s.body.stripe_subscription_id as string;
    const since = () =>
      t
        .db('subscriptions')
        .where({ id: s.id })
        .first()
        .then((r) => r!.payment_failing_since);
    expect(await since()).toBeNull();

    await deliver('past_due', stripeId);
    const failedAt = clock;
    expect((await since())?.getTime()).toBe(failedAt);
    clock += 5 * 86_400_000;
    await deliver('unpaid', stripeId);
    expect((await since())?.getTime()).toBe(failedAt);
    const claims = (await request(t.app).get('/api/licenses').set('X-API-Key', s.customer.apiKey).expect(200)).body.claims;
    expect([claims.status, claims.grace_until]).toEqual(['grace', Math.floor(failedAt / 1000) + 14 * 86_400]);

    clock += 86_400_000;
    await deliver('active', stripeId);
    expect(await since()).toBeNull();
  } finally {
    await t.close();
    await stripe.close();
  }
});
