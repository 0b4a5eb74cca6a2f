/**
 * Webhook deliveries by the Standard Webhooks specification, checked by a real receiver with the
 * standardwebhooks package; the retry schedule and disabling; the routes (test, deliveries, resend);
 * the secret kept out of logs, attempts and lists; the metrics.
 */
import request from 'supertest';
import { Webhook } from 'standardwebhooks';
import { expectError } from '../helpers/envelope';
import {
  deliveryStates,
  disableOtherEndpoints,
  endpointWithReceiver,
  insertEndpoint,
  newWorker,
  sleep,
  startReceiver,
  waitFor,
  webhookEnv,
  type Receiver,
} from '../helpers/delivery-fixtures';
import { emitEvent, emitEvents } from '../helpers/factories';
import { newSigningSecret } from '../../src/modules/webhooks/webhook-endpoints-service';
import { createTestApp, type TestApp } from '../helpers/test-app';
import type { DeliveryWorker } from '../../src/modules/webhooks/delivery-worker';

let t: TestApp;
const receivers: Receiver[] = [];
const workers: DeliveryWorker[] = [];

beforeAll(async () => {
  t = await createTestApp(webhookEnv({ WEBHOOK_RETRY_SCHEDULE: '1s,1s', WEBHOOK_DISABLE_AFTER: '3s' }));
  await disableOtherEndpoints(t);
});
afterEach(async () => {
  for (const w of workers.splice(0)) await w.stop();
  await disableOtherEndpoints(t);
});
afterAll(async () => {
  for (const r of receivers) await r.close();
  await t.close();
});

const receiving = async (events: string[] = ['*']) => {
  const ep = await endpointWithReceiver(t, events);
  receivers.push(ep.receiver);
  return ep;
};
const worker = (opts: Parameters<typeof newWorker>[1] = {}) => {
  const w = newWorker(t, opts);
  workers.push(w);
  return w;
};
const admin = () => ({ Authorization: `Bearer ${t.adminToken}` });

describe('signed deliveries', () => {
  test('when an event is emitted, then the receiver gets it signed by Standard Webhooks: body, id, timestamp and signature verify with standardwebhooks', async () => {
    const ep = await receiving();
    const [id] = await emitEvents(t, 1, { data: { seq: 0, hello: 'world' } });
    worker().start();
    await waitFor(() => ep.receiver.received.length === 1);
    const got = ep.receiver.received[0]!;
    expect(got.verifyError).toBeNull();
    expect(got.id).toBe(id);
    expect(got.headers['content-type']).toBe('application/json');
    expect(got.headers['user-agent']).toMatch(/^billing-service-webhooks\//);
    expect(Math.abs(Number(got.timestamp) - Date.now() / 1000)).toBeLessThan(5);
    expect(got.signature).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    const event = await t.db('events').where({ id }).first();
    // Exactly as the events API shows an event.
    expect(JSON.parse(got.body)).toEqual({
      id,
      type: 'customer.updated',
      created_at: event!.created_at.toISOString(),
      customer_id: null,
      data: { seq: 0, hello: 'world' },
    });
    await waitFor(async () => (await deliveryStates(t, ep.id, [id!])).delivered === 1);
    const endpoint = await t.db('webhook_endpoints').where({ id: ep.id }).first();
    expect(endpoint!.last_success_at).not.toBeNull();
    expect(endpoint!.failing_since).toBeNull();
  });

  test('when the body is tampered with or the timestamp is old, then standardwebhooks refuses it; the untouched delivery verifies (control)', async () => {
    const ep = await receiving();
    await emitEvents(t, 1);
    worker().start();
    await waitFor(() => ep.receiver.received.length === 1);
    const got = ep.receiver.received[0]!;
    const wh = new Webhook(ep.secret);
    const headers = { 'webhook-id': got.id, 'webhook-timestamp': got.timestamp, 'webhook-signature': got.signature };
    expect(() => wh.verify(got.body, headers)).not.toThrow();
    expect(() => wh.verify(got.body.replace('"seq":0', '"seq":1'), headers)).toThrow('No matching signature found');
    expect(() => wh.verify(got.body, { ...headers, 'webhook-id': 'evt_other' })).toThrow('No matching signature found');
    const old = String(Number(got.timestamp) - 600);
    expect(() => wh.verify(got.body, { ...headers, 'webhook-timestamp': old })).toThrow('Message timestamp too old');
    // Signed for that old time by the same secret: still too old.
    const resigned = wh.sign(got.id, new Date(Number(old) * 1000), got.body);
    expect(() => wh.verify(got.body, { ...headers, 'webhook-timestamp': old, 'webhook-signature': resigned })).toThrow('Message timestamp too old');
  });

  test('when an endpoint has a rotated-out secret still in force, then each delivery carries one signature per secret; an expired secret signs nothing', async () => {
    const receiver = await startReceiver();
    receivers.push(receiver);
    const old = newSigningSecret();
    const expired = newSigningSecret();
    const ep = await insertEndpoint(t, {
      url: receiver.url,
      extraSecrets: [
        { secret: old, expiresInMs: 3_600_000 },
        { secret: expired, expiresInMs: -1000 },
      ],
    });
    receiver.secrets.push(old); // a receiver still on the old secret verifies
    await emitEvents(t, 1);
    worker().start();
    await waitFor(() => receiver.received.length === 1);
    const got = receiver.received[0]!;
    expect(got.verifyError).toBeNull();
    expect(got.signature.split(' ')).toHaveLength(2);
    const headers = { 'webhook-id': got.id, 'webhook-timestamp': got.timestamp, 'webhook-signature': got.signature };
    expect(() => new Webhook(ep.secret).verify(got.body, headers)).not.toThrow();
    expect(() => new Webhook(expired).verify(got.body, headers)).toThrow('No matching signature found');
  });
});

describe('retries and disabling', () => {
  test('when the receiver keeps answering 500, then it is attempted on the schedule (1s, 1s, with up to 10% jitter) and failed after the last; every attempt recorded', async () => {
    const ep = await receiving();
    ep.receiver.behave(() => ({ status: 500, body: 'nope' }));
    const [id] = await emitEvents(t, 1);
    worker().start();
    await waitFor(async () => (await deliveryStates(t, ep.id, [id!])).failed === 1, 10_000, 'failed');
    const times = ep.receiver.received.map((r) => r.at);
    expect(times).toHaveLength(3);
    for (const gap of [times[1]! - times[0]!, times[2]! - times[1]!]) {
      expect(gap).toBeGreaterThanOrEqual(950);
      expect(gap).toBeLessThan(1100 + 400); // the jitter, and the 100 ms poll
    }
    expect(new Set(ep.receiver.received.map((r) => r.id))).toEqual(new Set([id]));
    const attempts = await t.db('webhook_attempts').where({ endpoint_id: ep.id }).orderBy('id');
    expect(attempts.map((a) => [a.outcome, a.status, a.response_body, a.error])).toEqual([
      ['failed', 500, 'nope', 'HTTP 500'],
      ['failed', 500, 'nope', 'HTTP 500'],
      ['failed', 500, 'nope', 'HTTP 500'],
    ]);
    const d = await t.db('webhook_deliveries').where({ endpoint_id: ep.id }).first();
    expect(d).toMatchObject({ state: 'failed', attempts: 3, last_status: 500 });
  });

  test('when an endpoint fails past WEBHOOK_DISABLE_AFTER without a success, then it is disabled, webhook_endpoint.disabled goes to the others, and its pending deliveries are not sent', async () => {
    const dead = await receiving();
    dead.receiver.behave(() => ({ status: 503 }));
    const watcher = await receiving(['webhook_endpoint.*']);
    const w = worker();
    w.start();
    // A new event every 700 ms: the endpoint keeps failing (each delivery has 2 retries, 1 s apart) past the 3 s.
    const emitted: string[] = [];
    await waitFor(
      async () => {
        if ((await t.db('webhook_endpoints').where({ id: dead.id }).first())!.disabled) return true;
        if (emitted.length === 0 || Date.now() - Number(emitted.at(-1)!.split(':')[1]) > 700) emitted.push(`${(await emitEvents(t, 1))[0]}:${Date.now()}`);
        return false;
      },
      10_000,
      'disabled',
    );
    const last = emitted.at(-1)!.split(':')[0]!;
    const row = (await t.db('webhook_endpoints').where({ id: dead.id }).first())!;
    expect(row).toMatchObject({ disabled: true, disabled_reason: 'failing' });
    expect(row.failing_since!.getTime()).toBeLessThanOrEqual(row.disabled_at!.getTime() - 3000);
    // The other endpoint hears of it, signed like any event.
    await waitFor(() => watcher.receiver.received.length === 1);
    const heard = JSON.parse(watcher.receiver.received[0]!.body) as { type: string; data: { id: string; disabled_reason: string } };
    expect(watcher.receiver.received[0]!.verifyError).toBeNull();
    expect(heard.type).toBe('webhook_endpoint.disabled');
    expect(heard.data).toMatchObject({ id: dead.id, disabled_reason: 'failing' });
    // The endpoint exactly as the API shows it (webhookEndpointJson, the one function for both).
    expect(heard.data).toEqual((await request(t.app).get(`/api/webhook-endpoints/${dead.id}`).set(admin())).body.webhook_endpoint);
    expect(JSON.stringify(heard)).not.toContain(dead.secret.slice(6));
    // Once: one event, however many outcomes followed.
    expect(await t.db('events').where({ type: 'webhook_endpoint.disabled' }).whereRaw(`data->>'id' = ?`, [dead.id])).toHaveLength(1);
    // Its delivery was still pending (retries left): no attempt is made any more.
    const before = dead.receiver.received.length;
    expect((await deliveryStates(t, dead.id, [last])).pending).toBe(1);
    await t.db('webhook_deliveries').where({ endpoint_id: dead.id }).update({ next_attempt_at: t.db.fn.now() });
    w.wake();
    await sleep(800);
    expect(dead.receiver.received.length).toBe(before);
  });

  test('when an endpoint succeeds again before WEBHOOK_DISABLE_AFTER, then failing_since is cleared and it stays enabled (control)', async () => {
    const ep = await receiving();
    ep.receiver.behave(({ count }) => (count === 1 ? { status: 500 } : { status: 204 }));
    const [id] = await emitEvents(t, 1);
    worker().start();
    await waitFor(() => ep.receiver.received.length === 1);
    await waitFor(async () => (await t.db('webhook_endpoints').where({ id: ep.id }).first())!.failing_since !== null);
    await waitFor(async () => (await deliveryStates(t, ep.id, [id!])).delivered === 1);
    const row = (await t.db('webhook_endpoints').where({ id: ep.id }).first())!;
    expect(row).toMatchObject({ disabled: false, failing_since: null });
  });

  test('when an admin disabled an endpoint, then its pending deliveries are not sent; enabled again, they are (control)', async () => {
    const ep = await receiving();
    await t.db('webhook_endpoints').where({ id: ep.id }).update({ disabled: true, disabled_reason: 'admin' });
    const ids = await emitEvents(t, 1); // written while enabled? No: disabled endpoints get no new delivery
    expect(await deliveryStates(t, ep.id, ids)).toEqual({});
    await t.db('webhook_deliveries').insert({ event_id: ids[0]!, endpoint_id: ep.id });
    worker().start();
    await sleep(600);
    expect(ep.receiver.received).toHaveLength(0);
    await t.db('webhook_endpoints').where({ id: ep.id }).update({ disabled: false, disabled_reason: null });
    await waitFor(() => ep.receiver.received.length === 1);
  });
});

describe('POST /api/webhook-endpoints/:id/test', () => {
  test('when called, then a webhook_endpoint.test event goes to that endpoint alone, now, and the answer carries the outcome', async () => {
    const ep = await receiving();
    const other = await receiving(['*']);
    const res = await request(t.app).post(`/api/webhook-endpoints/${ep.id}/test`).set(admin()).send();
    expect(res.status).toBe(200);
    expect(res.body.attempt).toMatchObject({ outcome: 'delivered', status: 200, error: null });
    expect(res.body.delivery).toMatchObject({ state: 'delivered', attempts: 1, endpoint_id: ep.id, event_id: res.body.event_id, last_status: 200 });
    expect(ep.receiver.received).toHaveLength(1);
    expect(ep.receiver.received[0]).toMatchObject({ id: res.body.event_id, verifyError: null });
    expect(JSON.parse(ep.receiver.received[0]!.body)).toMatchObject({ type: 'webhook_endpoint.test', data: { id: ep.id } });
    expect(await t.db('webhook_deliveries').where({ event_id: res.body.event_id })).toHaveLength(1);
    expect(other.receiver.received).toHaveLength(0);
    const audit = await t.db('audit_log').where({ action: 'webhook_endpoint.test', target_id: ep.id });
    expect(audit).toHaveLength(1);
  });

  test('when the receiver fails, then the answer says so and the delivery is retried on schedule', async () => {
    const ep = await receiving();
    ep.receiver.behave(({ count }) => (count === 1 ? { status: 500, body: 'down' } : { status: 200 }));
    const res = await request(t.app).post(`/api/webhook-endpoints/${ep.id}/test`).set(admin()).send();
    expect(res.status).toBe(200);
    expect(res.body.attempt).toMatchObject({ outcome: 'failed', status: 500, error: 'HTTP 500' });
    expect(res.body.delivery).toMatchObject({ state: 'pending', attempts: 1 });
    worker().start();
    await waitFor(async () => (await deliveryStates(t, ep.id, [res.body.event_id])).delivered === 1, 5000);
    expect(ep.receiver.received.map((r) => r.id)).toEqual([res.body.event_id, res.body.event_id]);
  });

  test('when the endpoint is unknown or the id malformed, then 404', async () => {
    expectError(await request(t.app).post('/api/webhook-endpoints/01900000-0000-7000-8000-000000000000/test').set(admin()).send(), 404, 'NOT_FOUND');
    expectError(await request(t.app).post('/api/webhook-endpoints/nope/test').set(admin()).send(), 404, 'NOT_FOUND');
  });
});

describe('GET /api/webhook-endpoints/:id/deliveries', () => {
  test('when attempts were made, then they are listed newest first with a cursor, never a secret', async () => {
    const ep = await receiving();
    ep.receiver.behave(({ count }) => (count === 1 ? { status: 500, body: 'x'.repeat(3000) } : { status: 200, body: 'thanks' }));
    const [id] = await emitEvents(t, 1);
    worker().start();
    await waitFor(async () => (await deliveryStates(t, ep.id, [id!])).delivered === 1, 5000);
    const first = await request(t.app).get(`/api/webhook-endpoints/${ep.id}/deliveries?limit=1`).set(admin());
    expect(first.status).toBe(200);
    expect(first.body.data).toHaveLength(1);
    expect(first.body.data[0]).toMatchObject({
      event_id: id,
      event_type: 'customer.updated',
      outcome: 'delivered',
      status: 200,
      response_body: 'thanks',
      error: null,
    });
    expect(first.body.next_cursor).toEqual(expect.any(String));
    const second = await request(t.app).get(`/api/webhook-endpoints/${ep.id}/deliveries?limit=1&cursor=${first.body.next_cursor}`).set(admin());
    expect(second.body.data[0]).toMatchObject({ event_id: id, outcome: 'failed', status: 500, error: 'HTTP 500' });
    expect(second.body.data[0].response_body).toHaveLength(1024);
    expect(second.body.next_cursor).toBeNull();
    expect(Object.keys(first.body.data[0]).sort()).toEqual(
      ['attempted_at', 'duration_ms', 'error', 'event_id', 'event_type', 'id', 'outcome', 'response_body', 'status'].sort(),
    );
    const text = JSON.stringify([first.body, second.body]);
    expect(text).not.toContain(ep.secret);
    expect(text).not.toContain(ep.secret.slice(6));
  });

  test('when the endpoint is unknown, then 404; a bad cursor is a 422', async () => {
    expectError(await request(t.app).get('/api/webhook-endpoints/01900000-0000-7000-8000-000000000000/deliveries').set(admin()), 404, 'NOT_FOUND');
    const ep = await receiving();
    expectError(await request(t.app).get(`/api/webhook-endpoints/${ep.id}/deliveries?cursor=abc`).set(admin()), 422, 'VALIDATION_FAILED');
  });
});

describe('POST /api/events/:id/resend', () => {
  test('when an event is resent to one endpoint, then its delivery is pending again with a fresh schedule and delivered again with the same webhook-id', async () => {
    const ep = await receiving();
    const [id] = await emitEvents(t, 1);
    worker().start();
    await waitFor(async () => (await deliveryStates(t, ep.id, [id!])).delivered === 1);
    const res = await request(t.app).post(`/api/events/${id}/resend`).set(admin()).send({ endpoint_id: ep.id });
    expect(res.status).toBe(200);
    expect(res.body.event_id).toBe(id);
    expect(res.body.deliveries).toHaveLength(1);
    expect(res.body.deliveries[0]).toMatchObject({ endpoint_id: ep.id, state: 'pending', attempts: 0 });
    await waitFor(() => ep.receiver.received.length === 2);
    expect(ep.receiver.received.map((r) => r.id)).toEqual([id, id]);
    expect(ep.receiver.received.every((r) => r.verifyError === null)).toBe(true);
    expect(await t.db('audit_log').where({ action: 'event.resend', target_id: id })).toHaveLength(1);
  });

  test('when resent without an endpoint, then it goes to every enabled endpoint that wants it (one that had none gets one; a disabled one none)', async () => {
    const a = await receiving(['customer.*']);
    const [id] = await emitEvents(t, 1);
    const b = await receiving(['customer.updated']); // created after the event
    const c = await receiving(['license.*']); // does not want it
    const off = await insertEndpoint(t, { url: 'http://127.0.0.1:9/', disabled: true });
    const res = await request(t.app).post(`/api/events/${id}/resend`).set(admin()).send({});
    expect(res.status).toBe(200);
    expect(res.body.deliveries.map((d: { endpoint_id: string }) => d.endpoint_id).sort()).toEqual([a.id, b.id].sort());
    worker().start();
    await waitFor(() => a.receiver.received.length === 1 && b.receiver.received.length === 1);
    expect(c.receiver.received).toHaveLength(0);
    expect(await deliveryStates(t, off.id, [id!])).toEqual({});
  });

  test('when the event or the endpoint is unknown, or the id malformed, then 404; a bad body is a 422', async () => {
    const [id] = await emitEvents(t, 1);
    expectError(
      await request(t.app)
        .post(`/api/events/evt_${'0'.repeat(32)}/resend`)
        .set(admin())
        .send({}),
      404,
      'NOT_FOUND',
    );
    expectError(await request(t.app).post('/api/events/evt_nope/resend').set(admin()).send({}), 404, 'NOT_FOUND');
    expectError(
      await request(t.app).post(`/api/events/${id}/resend`).set(admin()).send({ endpoint_id: '01900000-0000-7000-8000-000000000000' }),
      404,
      'NOT_FOUND',
    );
    expectError(await request(t.app).post(`/api/events/${id}/resend`).set(admin()).send({ endpoint_id: 'x' }), 422, 'VALIDATION_FAILED');
    expectError(await request(t.app).post(`/api/events/${id}/resend`).set(admin()).send({ other: 1 }), 422, 'VALIDATION_FAILED');
  });
});

describe('secrets and metrics', () => {
  test('when deliveries are made, then the secret is in no log line, attempt row or delivery row', async () => {
    const ep = await receiving();
    ep.receiver.behave(({ count }) => (count === 1 ? { status: 500 } : { status: 200 }));
    const [id] = await emitEvents(t, 1);
    worker().start();
    await waitFor(async () => (await deliveryStates(t, ep.id, [id!])).delivered === 1, 5000);
    const rows = JSON.stringify([await t.db('webhook_attempts').where({ endpoint_id: ep.id }), await t.db('webhook_deliveries').where({ endpoint_id: ep.id })]);
    const raw = ep.secret.slice('whsec_'.length);
    for (const text of [rows, t.logs.join('\n')]) {
      expect(text).not.toContain(raw);
      expect(text).not.toContain(Buffer.from(raw, 'base64').toString('hex'));
    }
    // The logs did see this delivery's work (the check looked at something).
    expect(ep.receiver.received.length).toBe(2);
  });

  test('when attempts were made, then /metrics has the outcomes, durations, the oldest pending age and the disabled endpoints', async () => {
    const ep = await receiving();
    await emitEvents(t, 2);
    worker().start();
    await waitFor(() => ep.receiver.received.length === 2);
    // Pending for an enabled endpoint, 120 s old, and never attempted.
    const stuck = await insertEndpoint(t, { url: 'http://127.0.0.1:9/' });
    await workers[0]!.stop();
    const old = await emitEvent(t, { type: 'license.expired' });
    await t.db.raw(`update webhook_deliveries set created_at = now() - interval '120 seconds' where event_id = ? and endpoint_id = ?`, [old, stuck.id]);
    const res = await request(t.app).get('/metrics').set(admin());
    expect(res.status).toBe(200);
    expect(res.text).toMatch(/^webhook_deliveries_total\{outcome="delivered"\} [1-9]\d*$/m);
    expect(res.text).toMatch(/^webhook_delivery_duration_seconds_count [1-9]\d*$/m);
    const oldest = Number(/^webhook_oldest_pending_seconds (\S+)$/m.exec(res.text)?.[1]);
    expect(oldest).toBeGreaterThanOrEqual(119);
    expect(res.text).toMatch(/^webhook_endpoints_disabled [1-9]\d*$/m);
  });
});
