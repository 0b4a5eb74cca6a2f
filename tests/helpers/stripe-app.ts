/**
 * The real app with Stripe on, talking to a fake Stripe through the real stripe-node client, and
 * Stripe's webhooks signed the way stripe-node's own test helper signs them: the setup every Stripe
 * suite shares. Start it in beforeAll, close it in afterAll.
 */
import type { Server } from 'node:http';
import Stripe from 'stripe';
import request from 'supertest';
import { startFakeStripe, type FakeStripe } from './fake-stripe';
import { createTestApp, type TestApp } from './test-app';

/** The webhook signing secret the app is given (STRIPE_WEBHOOK_SECRET). */
export const WEBHOOK_TEST_SECRET = 'whsec_test_webhooks_secret';

export interface StripeApp {
  stripe: FakeStripe;
  t: TestApp;
  /** The admin token's Authorization header. */
  admin: Record<string, string>;
  close(): Promise<void>;
}

export async function startStripeApp(env: Record<string, string> = {}): Promise<StripeApp> {
  const stripe = await startFakeStripe();
  const t = await createTestApp({
    STRIPE_SECRET_KEY: 'sk_test_stripeapp',
    STRIPE_API_BASE: stripe.url,
    STRIPE_WEBHOOK_SECRET: WEBHOOK_TEST_SECRET,
    FORWARDER_ENABLED: 'false',
    ...env,
  });
  return {
    stripe,
    t,
    admin: { Authorization: `Bearer ${t.adminToken}` },
    async close() {
      await t.close();
      await stripe.close();
    },
  };
}

/**
 * POSTs an event to /api/webhooks/stripe, signed with `secret` (default the app's) at `timestamp`
 * (default now); `body` replaces what is sent (the signature stays the event's), `signature` the
 * header (null: none).
 */
export function deliverEvent(app: Server, evt: object, opts: { secret?: string; timestamp?: number; body?: string; signature?: string | null } = {}) {
  const payload = JSON.stringify(evt);
  const header = Stripe.webhooks.generateTestHeaderString({
    payload,
    secret: opts.secret ?? WEBHOOK_TEST_SECRET,
    ...(opts.timestamp ? { timestamp: opts.timestamp } : {}),
  });
  const req = request(app).post('/api/webhooks/stripe').set('Content-Type', 'application/json');
  if (opts.signature !== null) req.set('Stripe-Signature', opts.signature ?? header);
  return req.send(opts.body ?? payload);
}
