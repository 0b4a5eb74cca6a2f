/**
 * A bulk rotation whose answer is cut off after its commit (a proxy dropping the connection, a
 * network failure while the answer travels): the keys were made, and nobody has them. Sent again
 * with the same Idempotency-Key, the run resumes: each customer it had rotated gets a fresh key in
 * place of the lost one (revoked at once: nobody ever saw it), its older keys keep the grace the
 * first attempt gave them, and no customer ends up with a key nobody holds.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import request from 'supertest';
import { expectError } from '../helpers/envelope';
import { createCustomer, type CreatedCustomer } from '../helpers/factories';
import { createTestApp, type TestApp } from '../helpers/test-app';

let t: TestApp;
let server: http.Server;
let cutter: net.Server;
beforeAll(async () => {
  t = await createTestApp({ MAX_ACTIVE_KEYS_PER_CUSTOMER: '3' });
  server = t.app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  // In front of the service: relays requests, and cuts the connection when the answer starts, so
  // the answer is lost after the service committed (it writes its answer only then).
  cutter = net.createServer((client) => {
    const upstream = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    client.pipe(upstream);
    upstream.once('data', () => {
      client.destroy();
      upstream.destroy();
    });
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
  });
  await new Promise<void>((r) => cutter.listen(0, '127.0.0.1', r));
});
afterAll(async () => {
  cutter.close();
  server.close();
  await t.close();
});

/** POST /api/keys/rotate through the cutting proxy: resolves when the connection was cut. */
function rotateCutOff(body: object, idempotencyKey?: string): Promise<string> {
  const text = JSON.stringify(body);
  return new Promise((resolve) => {
    const req = http.request({
      host: '127.0.0.1',
      port: (cutter.address() as net.AddressInfo).port,
      path: '/api/keys/rotate',
      method: 'POST',
      headers: {
        Authorization: `Bearer ${t.adminToken}`,
        'Content-Type': 'application/json',
        'Content-Length': Buffer.byteLength(text),
        ...(idempotencyKey ? { 'Idempotency-Key': idempotencyKey } : {}),
      },
    });
    req.on('response', () => resolve('answered'));
    req.on('error', (err) => resolve(err.message));
    req.end(text);
  });
}
const rotate = (body: object, idempotencyKey?: string) => {
  const r = request(t.app).post('/api/keys/rotate').set('Authorization', `Bearer ${t.adminToken}`);
  return (idempotencyKey ? r.set('Idempotency-Key', idempotencyKey) : r).send(body);
};
const me = (key: string) => request(t.app).get('/api/me').set('X-API-Key', key);
const liveKeys = (customerId: string) =>
  t
    .db('api_keys')
    .where({ customer_id: customerId })
    .whereNull('revoked_at')
    .andWhere((w) => void w.whereNull('expires_at').orWhere('expires_at', '>', t.db.fn.now()));

async function three(): Promise<CreatedCustomer[]> {
  return [await createCustomer(t), await createCustomer(t), await createCustomer(t)];
}

test('when the answer is cut off after the commit and the run is sent again with its Idempotency-Key, then every customer gets a key that is shown, and the lost keys are revoked', async () => {
  const customers = await three();
  const ids = customers.map((c) => c.id);
  const run = randomUUID();
  const body = { grace_period_seconds: 3600, customer_ids: ids };

  expect(await rotateCutOff(body, run)).toMatch(/socket hang up|ECONNRESET/);
  // The cut-off attempt committed: each customer has a new key nobody received.
  const lost = new Map<string, { id: string }>();
  for (const c of customers) {
    const keys = await liveKeys(c.id);
    expect(keys).toHaveLength(2);
    lost.set(
      c.id,
      keys.find((k) => k.id !== c.keyId)!,
    );
  }
  const graceAfterFirst = new Map(
    await Promise.all(customers.map(async (c) => [c.id, (await t.db('api_keys').where({ id: c.keyId }).first())!.expires_at!.getTime()] as const)),
  );

  const again = await rotate(body, run);
  expect(again.status).toBe(200);
  expect(again.body.rotated).toBe(3);
  expect(again.body.skipped).toEqual([]);
  for (const c of customers) {
    const k = again.body.keys.find((x: { customer_id: string }) => x.customer_id === c.id);
    // The lost key is the one this answer ended; the new one works.
    expect(k.ended_key_ids).toEqual([lost.get(c.id)!.id]);
    await me(k.api_key).expect(200);
    const row = (await t
      .db('api_keys')
      .where({ id: lost.get(c.id)!.id })
      .first())!;
    expect(row.revoked_at).not.toBeNull();
    // The first key keeps the grace the first attempt gave it, no more, no less, and still works.
    expect((await t.db('api_keys').where({ id: c.keyId }).first())!.expires_at!.getTime()).toBe(graceAfterFirst.get(c.id));
    await me(c.apiKey).expect(200);
    expect((await liveKeys(c.id)).map((r) => r.id).sort()).toEqual([c.keyId, k.key.id].sort());
  }
  const audit = await t.db('audit_log').where({ action: 'api_key.bulk_rotate', outcome: 'success' }).whereRaw(`details->>'idempotency_key' = ?`, [run]);
  expect(audit).toHaveLength(2);
  expect(audit.map((a) => a.details.resumed).sort()).toEqual([0, 3]);
});

test('when a cut-off run is sent again without its Idempotency-Key, then it rotates again and the lost keys stay live (what the key prevents: control)', async () => {
  const customers = await three();
  const body = { grace_period_seconds: 3600, customer_ids: customers.map((c) => c.id) };
  await rotateCutOff(body);
  const again = await rotate(body);
  expect(again.status).toBe(200);
  // The original, the lost key and the new one: a key nobody holds stays live for the grace period.
  for (const c of customers) expect(await liveKeys(c.id)).toHaveLength(3);
});

test('when a resumed run also covers customers the first attempt never reached, then those are rotated as usual', async () => {
  const [a, b, c] = await three();
  const run = randomUUID();
  await rotateCutOff({ grace_period_seconds: 0, customer_ids: [a!.id] }, run);
  const res = await rotate({ grace_period_seconds: 0, customer_ids: [a!.id, b!.id, c!.id] }, run);
  expect(res.status).toBe(200);
  const byId = new Map(res.body.keys.map((k: { customer_id: string }) => [k.customer_id, k]));
  expect((byId.get(b!.id) as { ended_key_ids: string[] }).ended_key_ids).toEqual([b!.keyId]);
  expect((byId.get(c!.id) as { ended_key_ids: string[] }).ended_key_ids).toEqual([c!.keyId]);
  // a's original key was revoked by the first attempt (grace 0); only the key shown now is live.
  expectError(await me(a!.apiKey), 401, 'UNAUTHORIZED');
  expect((await liveKeys(a!.id)).map((k) => k.id)).toEqual([(byId.get(a!.id) as { key: { id: string } }).key.id]);
  for (const k of res.body.keys) await me(k.api_key).expect(200);
});

test('when the Idempotency-Key is not 1-190 printable characters, then 422 and nothing is rotated', async () => {
  const [a] = await three();
  const res = await rotate({ grace_period_seconds: 0, customer_ids: [a!.id] }, 'has spaces in it');
  expectError(res, 422, 'VALIDATION_FAILED');
  await me(a!.apiKey).expect(200);
});
