/**
 * The forwarder on Stripe's meter event stream (the default mode), against the real stripe-node
 * client and the fake Stripe: sessions, calls of up to 100 events, retries, lost answers, and
 * Stripe's asynchronous error reports arriving by webhook.
 */
import Stripe from 'stripe';
import request from 'supertest';
import { CreatedCustomer, createStripeCustomer, reportBatch } from '../helpers/factories';
import { FakeStripe, startFakeStripe } from '../helpers/fake-stripe';
import { createTestApp, TestApp } from '../helpers/test-app';
import { clearPendingForwarding } from '../helpers/forwarding-state';

const WEBHOOK_SECRET = 'whsec_streamtest123';
let stripe: FakeStripe;
let t: TestApp;
let admin: Record<string, string>;

beforeAll(async () => {
  stripe = await startFakeStripe();
  t = await createTestApp({
    STRIPE_SECRET_KEY: 'sk_test_stream123',
    STRIPE_API_BASE: stripe.url,
    STRIPE_TIMEOUT_MS: '400',
    STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
    USAGE_METRICS: 'api_calls,storage_gb',
    USAGE_METER_EVENTS: 'storage_gb:storage_gigabytes',
    FORWARDER_BACKOFF_BASE_MS: '40',
    FORWARDER_BACKOFF_MAX_MS: '200',
    FORWARDER_MAX_ATTEMPTS: '4',
  });
  admin = { Authorization: `Bearer ${t.adminToken}` };
});
afterAll(async () => {
  await t.close();
  await stripe.close();
});
beforeEach(async () => {
  stripe.clearFailures();
  await clearPendingForwarding(t.db);
});

const stripeCustomer = () => createStripeCustomer(t);
const report = (c: CreatedCustomer, n: number, metric = 'api_calls') => reportBatch(t, c, n, metric, 's');

const rows = (ids: string[]) => t.db('usage_outbox').whereIn('id', ids);
const states = async (ids: string[]) => new Set((await rows(ids)).map((r) => r.state));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const callsFor = (ids: string[]) => stripe.streamCalls().filter((r) => (r.body.events as { identifier: string }[]).some((e) => ids.includes(e.identifier)));

test('when 250 events are pending, then they go as 3 stream calls on one session, each event once, with its submission recorded', async () => {
  const c = await stripeCustomer();
  const ids = [...(await report(c, 249)), ...(await report(c, 1, 'storage_gb'))];
  const sessionsBefore = stripe.sessionsCreated();

  const summary = await t.c.forwarder.runOnce();
  expect(summary).toMatchObject({ claimed: 250, sent: 250, failed: 0, calls: 3 });
  const calls = callsFor(ids);
  expect(calls.map((r) => (r.body.events as unknown[]).length).sort((a, b) => a - b)).toEqual([50, 100, 100]);
  // One session token for every call, not the secret key.
  expect(new Set(calls.map((r) => r.authorization)).size).toBe(1);
  expect(calls[0]!.authorization).toMatch(/^Bearer mets_/);
  expect(stripe.sessionsCreated() - sessionsBefore).toBeLessThanOrEqual(1);

  const row = (await rows([ids[0]!]).first())!;
  expect(stripe.held.get(ids[0]!)).toEqual({
    identifier: ids[0],
    event_name: 'api_calls',
    payload: { stripe_customer_id: c.stripeId, value: '1.5' },
    timestamp: row.occurred_at.toISOString(),
    via: 'stream',
  });
  expect(stripe.held.get(ids[249]!)).toMatchObject({ event_name: 'storage_gigabytes' });
  expect(await states(ids)).toEqual(new Set(['sent']));

  // Each call's events carry that call's submission id, logged with Stripe's request id.
  const bySubmission = new Map<string, number>();
  for (const r of await rows(ids)) bySubmission.set(r.stripe_submission_id!, (bySubmission.get(r.stripe_submission_id!) ?? 0) + 1);
  expect([...bySubmission.values()].sort((a, b) => a - b)).toEqual([50, 100, 100]);
  const logged = t.logs.filter((l) => l.includes('usage submission accepted by Stripe')).map((l) => JSON.parse(l));
  for (const submissionId of bySubmission.keys()) {
    expect(logged.find((l) => l.submissionId === submissionId)).toMatchObject({ requestId: expect.stringMatching(/^req_/) });
  }
  expect((await t.c.forwarder.runOnce()).claimed).toBe(0);
});

test('when the session token has expired, then a new session is made and the events are sent once', async () => {
  const c = await stripeCustomer();
  await t.c.forwarder.runOnce(); // a session exists
  const ids = await report(c, 5);
  stripe.expireSessions();
  const before = stripe.sessionsCreated();
  expect(await t.c.forwarder.runOnce()).toMatchObject({ sent: 5, retried: 0, calls: 1 });
  expect(stripe.sessionsCreated()).toBe(before + 1);
  expect(ids.every((id) => stripe.held.has(id))).toBe(true);
});

test('when a session is about to expire, then it is renewed before use', async () => {
  stripe.setSessionTtl(30_000); // inside the renewal margin (60 s): every use renews it
  stripe.expireSessions();
  try {
    const c = await stripeCustomer();
    const before = stripe.sessionsCreated();
    await report(c, 1);
    await t.c.forwarder.runOnce();
    await report(c, 1);
    await t.c.forwarder.runOnce();
    // The first run met the expired token (one new session), the second renewed it before use.
    expect(stripe.sessionsCreated()).toBe(before + 2);
  } finally {
    stripe.setSessionTtl(15 * 60_000);
    stripe.expireSessions();
  }
});

test.each([
  ['429', { status: 429, type: 'rate_limit', message: 'Too many requests' }],
  ['500', { status: 500, type: 'api_error' }],
] as const)('when Stripe answers %s, then the call is retried with backoff and each event is held once', async (_name, failure) => {
  const c = await stripeCustomer();
  const ids = await report(c, 120);
  stripe.failNext(/meter_event_stream/, 2, failure);
  const first = await t.c.forwarder.runOnce();
  expect(first).toMatchObject({ claimed: 120, sent: 0, retried: 120, calls: 2 });
  const row = (await rows([ids[0]!]).first())!;
  expect(row).toMatchObject({ state: 'pending', attempts: 1 });
  expect(row.last_error).toMatch(new RegExp(_name));
  expect(row.next_attempt_at!.getTime()).toBeGreaterThan(row.sent_at?.getTime() ?? 0);
  await sleep(60);
  expect(await t.c.forwarder.runOnce()).toMatchObject({ claimed: 120, sent: 120 });
  expect(await states(ids)).toEqual(new Set(['sent']));
  expect(ids.every((id) => stripe.held.has(id))).toBe(true);
});

test('when Stripe did the work but the answer was lost, then the resend is dropped by identifier: held once', async () => {
  const c = await stripeCustomer();
  const ids = await report(c, 30);
  const duplicates = stripe.duplicates();
  stripe.failNext(/meter_event_stream/, 1, 'drop');
  expect(await t.c.forwarder.runOnce()).toMatchObject({ retried: 30 });
  expect(ids.every((id) => stripe.held.has(id))).toBe(true);
  await sleep(60);
  expect(await t.c.forwarder.runOnce()).toMatchObject({ sent: 30 });
  expect(stripe.duplicates() - duplicates).toBe(30);
  expect(callsFor(ids)).toHaveLength(2);
});

test('when Stripe refuses a call (400), then its events are failed and an admin can retry them', async () => {
  const c = await stripeCustomer();
  const ids = await report(c, 3);
  stripe.failNext(/meter_event_stream/, 1, { status: 400, type: 'invalid_request_error', message: 'events[0].payload: invalid' });
  expect(await t.c.forwarder.runOnce()).toMatchObject({ failed: 3 });
  expect(await states(ids)).toEqual(new Set(['failed']));
  await request(t.app).post('/api/reports/forwarding/retry').set(admin).send({ event_ids: ids }).expect(200);
  expect(await t.c.forwarder.runOnce()).toMatchObject({ sent: 3 });
});

function signed(payload: object) {
  const body = JSON.stringify(payload);
  return { body, signature: Stripe.webhooks.generateTestHeaderString({ payload: body, secret: WEBHOOK_SECRET }) };
}

test('when Stripe reports events it rejected after accepting them, then those events are failed with its reason, shown, and retryable', async () => {
  const c = await stripeCustomer();
  const ids = await report(c, 4);
  await t.c.forwarder.runOnce();
  expect(await states(ids)).toEqual(new Set(['sent']));

  const event = stripe.event('v1.billing.meter.error_report_triggered', {
    developer_message_summary: '2 meter events failed validation',
    meter: 'mtr_123',
    validation_start: new Date(Date.now() - 60_000).toISOString(),
    validation_end: new Date().toISOString(),
    reason: {
      error_count: 3,
      error_types: [
        {
          code: 'meter_event_customer_not_found',
          error_count: 2,
          sample_errors: [
            { error_message: `No customer ${c.stripeId}`, request: { identifier: ids[0] } },
            { error_message: 'again', request: { identifier: 'someone-elses-event' } },
          ],
        },
        { code: 'timestamp_too_far_in_past', error_count: 1, sample_errors: [{ error_message: 'Timestamp too old', api_request: { identifier: ids[1] } }] },
      ],
    },
  });
  const { body, signature } = signed(event);
  const res = await request(t.app).post('/api/webhooks/stripe').set('Stripe-Signature', signature).set('Content-Type', 'application/json').send(body);
  expect(res.status).toBe(200);
  expect(res.body).toMatchObject({ result: 'processed' });

  const byId = Object.fromEntries((await rows(ids)).map((r) => [r.id, r]));
  expect(byId[ids[0]!]).toMatchObject({ state: 'failed', last_error: `STRIPE_REJECTED meter_event_customer_not_found: No customer ${c.stripeId}` });
  expect(byId[ids[1]!]).toMatchObject({ state: 'failed', last_error: 'STRIPE_REJECTED timestamp_too_far_in_past: Timestamp too old' });
  expect([byId[ids[2]!]!.state, byId[ids[3]!]!.state]).toEqual(['sent', 'sent']);
  const audit = await t.db('audit_log').where({ action: 'stripe.v1.billing.meter.error_report_triggered', target_id: event.id }).first();
  expect(audit!.details).toMatchObject({ error_count: 3, named: 2, marked_failed: 2, foreign: 1 });

  const status = await request(t.app).get('/api/reports/forwarding').set(admin);
  expect(status.body.recent_failures.find((f: { id: string }) => f.id === ids[0])).toMatchObject({
    last_error: expect.stringMatching(/^STRIPE_REJECTED meter_event_customer_not_found/),
    stripe_submission_id: expect.any(String),
  });

  // The same delivery again changes nothing.
  const again = await request(t.app)
    .post('/api/webhooks/stripe')
    .set('Stripe-Signature', signed(event).signature)
    .set('Content-Type', 'application/json')
    .send(body);
  expect(again.body).toMatchObject({ result: 'duplicate' });

  await request(t.app)
    .post('/api/reports/forwarding/retry')
    .set(admin)
    .send({ event_ids: [ids[0], ids[1]] })
    .expect(200);
  expect(await t.c.forwarder.runOnce()).toMatchObject({ sent: 2 });
});

test('when an error report is not shaped like one, then it is refused (400) and recorded', async () => {
  const event = stripe.event('v1.billing.meter.error_report_triggered', { reason: { error_types: 'nope' } });
  const { body, signature } = signed(event);
  const res = await request(t.app).post('/api/webhooks/stripe').set('Stripe-Signature', signature).set('Content-Type', 'application/json').send(body);
  expect(res.status).toBe(400);
  expect((await t.db('stripe_events').where({ id: event.id }).first())!.last_error).toMatch(/^BAD_REQUEST/);
});

test("when events wait, then the report and the metrics show the oldest one's age, and the rate sent", async () => {
  const c = await stripeCustomer();
  await report(c, 2);
  await t.db.raw("update usage_outbox set created_at = now() - interval '90 seconds' where state = 'pending'");
  let status = await request(t.app).get('/api/reports/forwarding').set(admin);
  expect(status.body.oldest_pending_age_seconds).toBeGreaterThanOrEqual(90);
  const metrics = await request(t.app).get('/metrics').set(admin);
  const age = Number(/^usage_forwarder_oldest_pending_seconds (\S+)$/m.exec(metrics.text)?.[1]);
  expect(age).toBeGreaterThanOrEqual(90);

  await t.c.forwarder.runOnce();
  status = await request(t.app).get('/api/reports/forwarding').set(admin);
  expect(status.body.oldest_pending_age_seconds).toBe(0);
  expect(status.body.sent_last_minute).toBeGreaterThanOrEqual(2);
  expect(Math.abs(status.body.events_per_second - status.body.sent_last_minute / 60)).toBeLessThanOrEqual(0.051);
  const after = await request(t.app).get('/metrics').set(admin);
  expect(after.text).toMatch(/^usage_forwarder_stripe_calls_total\{outcome="sent"\} \d+/m);
});
