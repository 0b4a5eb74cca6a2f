/**
 * Usage bundles (docs/USAGE.md, Air-gapped sites): files of usage an air-gapped instance signed with
 * its instance key, uploaded with a customer key or by an admin; each event stored once however
 * often a file comes; a signed receipt (verified here with the published JWKS) and a fresh license
 * answered; every refusal checked with its control, and nothing stored by a refused upload.
 */
import { randomBytes } from 'node:crypto';
import { calculateJwkThumbprint, createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import request from 'supertest';
import { expectError } from '../helpers/envelope';
import { createCustomer, createPlan, subscribe, type CreatedCustomer } from '../helpers/factories';
import {
  activateWithKey,
  bundleEvents,
  digestOf,
  Instance,
  instanceKey,
  newFingerprint,
  payloadOf,
  signBundle,
  uploadAsAdmin,
  uploadAsCustomer,
} from '../helpers/usage-bundles';
import { startStripeApp, type StripeApp } from '../helpers/stripe-app';
import { createTestApp, type TestApp } from '../helpers/test-app';

let t: TestApp;
let admin: Record<string, string>;
beforeAll(async () => {
  t = await createTestApp({ USAGE_METRICS: 'api_calls,storage_gb' });
  admin = { Authorization: `Bearer ${t.adminToken}` };
});
afterAll(() => t.close());

/** A customer with a subscription (a plan without an instance limit), so its instances can activate and get licenses. */
async function licensed(): Promise<CreatedCustomer> {
  const c = await createCustomer(t);
  await subscribe(t, { customer: c });
  return c;
}

/** An activated instance (with its key) of a licensed customer (new unless given). */
async function instance(c?: CreatedCustomer): Promise<Instance> {
  const i = new Instance(c ?? (await licensed()));
  await i.activate(t);
  return i;
}

const count = async (table: string, where: Record<string, unknown>) => Number((await t.db(table).where(where).count<{ n: string }[]>({ n: '*' }))[0]!.n);
const storedEvents = (customerId: string) => count('usage_events', { customer_id: customerId });
const storedBundles = (customerId: string) => count('usage_bundles', { customer_id: customerId });
const gapEvents = (customerId: string) => t.db('events').where({ customer_id: customerId, type: 'usage.bundle_gap' }).orderBy('id');
const jwks = async () => createLocalJWKSet((await request(t.app).get('/.well-known/jwks.json').expect(200)).body);

/** What a refused upload leaves: nothing of its events, no bundle row. */
async function expectNothingStored(customerId: string, before: { events: number; bundles: number }) {
  expect({ events: await storedEvents(customerId), bundles: await storedBundles(customerId) }).toEqual(before);
}
/** The customer as if created `days` ago (events before its creation are refused). */
const backdate = (customerId: string, days: number, db = t.db) =>
  db.raw('update customers set created_at = ? where id = ?', [new Date(Date.now() - days * 86_400_000), customerId]);
const snapshot = async (customerId: string) => ({ events: await storedEvents(customerId), bundles: await storedBundles(customerId) });

describe('instance keys on activations', () => {
  test('when an instance activates with its key, then the activation shows the key’s RFC 7638 thumbprint, to the customer and to admins', async () => {
    const c = await licensed();
    const key = instanceKey();
    const { fingerprint, activation } = await activateWithKey(t, c, key);
    expect(activation.instance_key_thumbprint).toBe(await calculateJwkThumbprint(key.jwk));
    const mine = (await request(t.app).get('/api/licenses/activations').set('X-API-Key', c.apiKey).expect(200)).body.data;
    const theirs = (await request(t.app).get(`/api/customers/${c.id}/activations`).set(admin).expect(200)).body.data;
    for (const list of [mine, theirs])
      expect(list.find((a: { fingerprint: string }) => a.fingerprint === fingerprint).instance_key_thumbprint).toBe(key.thumbprint);
    // Control: one activated without a key shows none.
    const plain = await request(t.app).post('/api/licenses/activations').set('X-API-Key', c.apiKey).send({ fingerprint: newFingerprint() }).expect(201);
    expect(plain.body.activation.instance_key_thumbprint).toBeNull();
  });

  test('when a live instance activates again with another key, then 409 INSTANCE_KEY_MISMATCH and its key is kept; the same key again is a heartbeat', async () => {
    const c = await licensed();
    const key = instanceKey();
    const { fingerprint } = await activateWithKey(t, c, key);
    const other = await request(t.app).post('/api/licenses/activations').set('X-API-Key', c.apiKey).send({ fingerprint, instance_key: instanceKey().jwk });
    expectError(other, 409, 'INSTANCE_KEY_MISMATCH');
    expect(JSON.stringify(other.body)).not.toContain('"x"');
    const same = await request(t.app).post('/api/licenses/activations').set('X-API-Key', c.apiKey).send({ fingerprint, instance_key: key.jwk }).expect(200);
    expect(same.body.activation.instance_key_thumbprint).toBe(key.thumbprint);
    const row = await t.db('license_activations').where({ customer_id: c.id, fingerprint }).first();
    expect(row!.instance_key).toEqual(key.jwk);
  });

  test('when an instance activated without a key activates again with one, then it gets that key', async () => {
    const c = await licensed();
    const fingerprint = newFingerprint();
    await request(t.app).post('/api/licenses/activations').set('X-API-Key', c.apiKey).send({ fingerprint }).expect(201);
    const key = instanceKey();
    const again = await request(t.app).post('/api/licenses/activations').set('X-API-Key', c.apiKey).send({ fingerprint, instance_key: key.jwk }).expect(200);
    expect(again.body.activation.instance_key_thumbprint).toBe(key.thumbprint);
  });
});

describe('an upload applies the bundle and answers a signed receipt and a fresh license', () => {
  test('when a bundle is uploaded with the customer key, then its events are stored, and the receipt verifies with the JWKS, typ usage-receipt+jwt', async () => {
    const i = await instance();
    const events = bundleEvents(3, { quantity: '2.5' });
    const bundle = await i.export(events);
    const res = await uploadAsCustomer(t, i.customer.apiKey, bundle).expect(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['idempotent-replayed']).toBeUndefined();

    const { payload, protectedHeader } = await jwtVerify(res.body.receipt, await jwks(), { typ: 'usage-receipt+jwt', issuer: t.c.config.license.issuer });
    expect(protectedHeader).toMatchObject({ alg: 'EdDSA', typ: 'usage-receipt+jwt', kid: t.c.licenseSigner.kid() });
    expect(payload).toEqual(res.body.receipt_claims);
    expect(res.body.receipt_claims).toEqual({
      iss: t.c.config.license.issuer,
      sub: i.customer.id,
      iat: expect.any(Number),
      jti: expect.any(String),
      bundle_id: i.bundleIds[0],
      seq: 1,
      customer_id: i.customer.id,
      fingerprint: i.fingerprint,
      bundle_digest: digestOf(bundle),
      events: 3,
      applied: 3,
      duplicates: 0,
      rejected: [],
      late: 0,
      missing_seq: [],
      previous_mismatch: false,
    });

    const rows = await t.db('usage_events').where({ customer_id: i.customer.id }).orderBy('idempotency_key');
    expect(rows.map((r) => [r.idempotency_key, r.metric, String(Number(r.quantity)), r.occurred_at.toISOString(), r.state])).toEqual(
      events.map((e) => [e.idempotency_key, 'api_calls', '2.5', e.occurred_at, 'l']),
    );
    const stored = await t.db('usage_bundles').where({ customer_id: i.customer.id });
    expect(stored).toEqual([
      expect.objectContaining({
        bundle_id: i.bundleIds[0],
        fingerprint: i.fingerprint,
        seq: 1,
        digest: digestOf(bundle),
        events: 3,
        applied: 3,
        receipt: res.body.receipt,
        uploaded_by: 'customer',
      }),
    ]);
    const audit = await t.db('audit_log').where({ action: 'usage.bundle_upload', target_id: i.bundleIds[0] });
    expect(audit.map((a) => [a.actor, a.outcome, a.details])).toEqual([
      [
        'customer',
        'success',
        {
          customer_id: i.customer.id,
          bundle_id: i.bundleIds[0],
          seq: 1,
          fingerprint: i.fingerprint,
          events: 3,
          applied: 3,
          duplicates: 0,
          rejected: 0,
          late: 0,
          missing_seq: 0,
          previous_mismatch: false,
        },
      ],
    ]);
    expect(JSON.stringify(audit)).not.toContain(events[0]!.idempotency_key);
  });

  test('when a receipt is answered, then a fresh license bound to the instance comes with it, verifying with the JWKS', async () => {
    const i = await instance();
    const res = await uploadAsAdmin(t, i.customer.id, await i.export(bundleEvents(1))).expect(200);
    expect(res.body.license_error).toBeNull();
    const { payload, protectedHeader } = await jwtVerify(res.body.license, await jwks());
    expect(protectedHeader.typ).toBe('license+jwt');
    expect(payload).toEqual(res.body.claims);
    expect(res.body.claims).toMatchObject({ sub: i.customer.id, instance: i.fingerprint, status: 'active' });
    // As an offline activation's: 365 days, capped by the subscription's validity and grace.
    expect(res.body.claims.exp).toBeGreaterThan(res.body.claims.iat);
    expect(res.body.jwks_url).toBe(t.c.config.license.jwksUrl);
    // Not a license: the receipt's typ says so, and a license verifier that asks for license+jwt refuses it.
    expect(decodeProtectedHeader(res.body.receipt).typ).toBe('usage-receipt+jwt');
    await expect(jwtVerify(res.body.receipt, await jwks(), { typ: 'license+jwt' })).rejects.toThrow();
  });

  test('when the same bundle is uploaded three times (by key, by admin, by key), then its events are stored once and the same receipt is answered each time', async () => {
    const i = await instance();
    const bundle = await i.export(bundleEvents(4));
    const first = await uploadAsCustomer(t, i.customer.apiKey, bundle).expect(200);
    const second = await uploadAsAdmin(t, i.customer.id, `${bundle}\n`).expect(200);
    const third = await uploadAsCustomer(t, i.customer.apiKey, `  ${bundle}\r\n`).expect(200);
    expect([second.body.receipt, third.body.receipt]).toEqual([first.body.receipt, first.body.receipt]);
    expect(third.body.receipt_claims).toEqual(first.body.receipt_claims);
    expect([second.headers['idempotent-replayed'], third.headers['idempotent-replayed']]).toEqual(['true', 'true']);
    // A fresh license each time.
    expect(new Set([first.body.claims.jti, second.body.claims.jti, third.body.claims.jti]).size).toBe(3);
    expect(await snapshot(i.customer.id)).toEqual({ events: 4, bundles: 1 });
    expect(await count('audit_log', { action: 'usage.bundle_upload', target_id: i.bundleIds[0] })).toBe(3);
  });

  test('when a later bundle re-exports the events of the one before with new ones, then only the new ones are applied, the rest are duplicates', async () => {
    const i = await instance();
    const old = bundleEvents(3, { prefix: 'old' });
    await uploadAsCustomer(t, i.customer.apiKey, await i.export(old)).expect(200);
    const res = await uploadAsCustomer(t, i.customer.apiKey, await i.export([...old, ...bundleEvents(2, { prefix: 'new' })])).expect(200);
    expect(res.body.receipt_claims).toMatchObject({ seq: 2, events: 5, applied: 2, duplicates: 3, rejected: [], missing_seq: [], previous_mismatch: false });
    expect(await snapshot(i.customer.id)).toEqual({ events: 5, bundles: 2 });
  });

  test('when events were sent online already, then the bundle counts them as duplicates; one sent online with another body is rejected, the others applied', async () => {
    const i = await instance();
    const events = bundleEvents(3);
    await request(t.app)
      .post('/api/usage')
      .set('X-API-Key', i.customer.apiKey)
      .send({ events: [events[0], { ...events[1], quantity: 99 }] })
      .expect(201);
    const res = await uploadAsCustomer(t, i.customer.apiKey, await i.export(events)).expect(200);
    expect(res.body.receipt_claims).toMatchObject({
      events: 3,
      applied: 1,
      duplicates: 1,
      rejected: [{ idempotency_key: events[1]!.idempotency_key, reason: 'idempotency_key: already used with a different event' }],
    });
    const kept = await t.db('usage_events').where({ customer_id: i.customer.id, idempotency_key: events[1]!.idempotency_key }).first();
    expect(Number(kept!.quantity)).toBe(99);
    expect(await storedEvents(i.customer.id)).toBe(3);
  });

  test('when some events break the usage rules, then each is rejected with its reason in the receipt and the others are applied', async () => {
    const i = await instance();
    const ok = bundleEvents(2, { prefix: 'ok' });
    const now = Date.now();
    const bad = [
      { metric: 'nosuch_metric', quantity: 1, occurred_at: new Date(now).toISOString(), idempotency_key: 'bad-metric' },
      { metric: 'api_calls', quantity: -1, occurred_at: new Date(now).toISOString(), idempotency_key: 'bad-quantity' },
      { metric: 'api_calls', quantity: '1e3', occurred_at: new Date(now).toISOString(), idempotency_key: 'bad-quantity-text' },
      { metric: 'api_calls', quantity: 1, idempotency_key: 'no-time' },
      { metric: 'api_calls', quantity: 1, occurred_at: '2026-13-45', idempotency_key: 'bad-time' },
      { metric: 'api_calls', quantity: 1, occurred_at: new Date(now + 3_600_000).toISOString(), idempotency_key: 'future' },
      { metric: 'api_calls', quantity: 1, occurred_at: new Date(now - 400 * 86_400_000).toISOString(), idempotency_key: 'before-customer' },
      // The same key twice in one bundle with another body: the first is applied, the second rejected.
      { ...ok[0], quantity: 7 },
    ];
    const res = await uploadAsCustomer(t, i.customer.apiKey, await i.export([...ok, ...bad])).expect(200);
    expect(res.body.receipt_claims).toMatchObject({ events: 10, applied: 2, duplicates: 0, late: 0 });
    expect(res.body.receipt_claims.rejected).toEqual([
      { idempotency_key: 'bad-metric', reason: 'metric: must be one of: api_calls, storage_gb' },
      { idempotency_key: 'bad-quantity', reason: 'quantity: must not be negative' },
      { idempotency_key: 'bad-quantity-text', reason: 'quantity: must be a non-negative decimal like 12 or 0.5' },
      { idempotency_key: 'no-time', reason: 'occurred_at: required in a bundle' },
      { idempotency_key: 'bad-time', reason: 'occurred_at: must be an ISO 8601 date-time with a time zone' },
      { idempotency_key: 'future', reason: 'occurred_at: more than 5 minutes after the bundle was created, or in the future' },
      { idempotency_key: 'before-customer', reason: 'occurred_at: before the customer was created' },
      { idempotency_key: ok[0]!.idempotency_key, reason: 'idempotency_key: already used with a different event' },
    ]);
    const keys = (await t.db('usage_events').where({ customer_id: i.customer.id }).select('idempotency_key')).map((r) => r.idempotency_key).sort();
    expect(keys).toEqual(ok.map((e) => e.idempotency_key).sort());
  });

  test('when a bundle holds more events than one statement writes (2,500), then every one is stored once, a repeat across the chunks a duplicate', async () => {
    const i = await instance();
    const events = bundleEvents(2500, { quantity: 1 });
    const res = await uploadAsCustomer(t, i.customer.apiKey, await i.export([...events, events[10]])).expect(200);
    expect(res.body.receipt_claims).toMatchObject({ events: 2501, applied: 2500, duplicates: 1, rejected: [] });
    expect(await storedEvents(i.customer.id)).toBe(2500);
    const total = await request(t.app).get(`/api/customers/${i.customer.id}/usage`).set(admin).expect(200);
    expect(total.body.totals).toEqual([{ metric: 'api_calls', quantity: '2500', events: 2500 }]);
  }, 60_000);

  test('when the same bundle is uploaded twice at once, then it is applied once and both answers carry the same receipt', async () => {
    const i = await instance();
    const bundle = await i.export(bundleEvents(50));
    const [a, b] = await Promise.all([uploadAsCustomer(t, i.customer.apiKey, bundle), uploadAsAdmin(t, i.customer.id, bundle)]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(a.body.receipt).toBe(b.body.receipt);
    expect(a.body.receipt_claims.applied).toBe(50);
    expect([a.headers['idempotent-replayed'], b.headers['idempotent-replayed']].sort()).toEqual(['true', undefined]);
    expect(await snapshot(i.customer.id)).toEqual({ events: 50, bundles: 1 });
  });
});

describe('refusals: each with its control, and nothing stored', () => {
  test('when one quantity is changed after signing, then 422 BUNDLE_SIGNATURE_INVALID and nothing is stored; the bundle as signed is applied', async () => {
    const i = await instance();
    const signed = await i.export(bundleEvents(3));
    const payload = payloadOf<{ events: { quantity: number }[] }>(signed);
    payload.events[1]!.quantity = 1000;
    const [h, , s] = signed.split('.');
    const tampered = `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`;
    const before = await snapshot(i.customer.id);
    const res = await uploadAsCustomer(t, i.customer.apiKey, tampered);
    expectError(res, 422, 'BUNDLE_SIGNATURE_INVALID');
    await expectNothingStored(i.customer.id, before);
    // Control.
    expect((await uploadAsCustomer(t, i.customer.apiKey, signed).expect(200)).body.receipt_claims.applied).toBe(3);
  });

  test('when a bundle is signed by another instance’s key, then it is refused (the kid of the instance it names: 422; the other key’s kid: 409 INSTANCE_KEY_UNKNOWN)', async () => {
    const a = await instance();
    const b = await instance(a.customer);
    const payload = a.nextPayload(bundleEvents(2));
    const before = await snapshot(a.customer.id);
    // b's key under a's kid: the signature does not verify against a's key.
    expectError(await uploadAsCustomer(t, a.customer.apiKey, await signBundle(payload, b.key, { kid: a.key.thumbprint })), 422, 'BUNDLE_SIGNATURE_INVALID');
    // b's key under its own kid, for a's fingerprint: no activation of a holds that key.
    expectError(await uploadAsCustomer(t, a.customer.apiKey, await signBundle(payload, b.key)), 409, 'INSTANCE_KEY_UNKNOWN');
    await expectNothingStored(a.customer.id, before);
    // Control: a's own key.
    await uploadAsCustomer(t, a.customer.apiKey, await signBundle(payload, a.key)).expect(200);
  });

  test('when a key was never activated (unknown kid), then 409 INSTANCE_KEY_UNKNOWN; once activated with it, the same bundle is applied', async () => {
    const c = await licensed();
    const i = new Instance(c);
    const bundle = await i.export(bundleEvents(1));
    const res = await uploadAsCustomer(t, c.apiKey, bundle);
    expectError(res, 409, 'INSTANCE_KEY_UNKNOWN');
    expect(await snapshot(c.id)).toEqual({ events: 0, bundles: 0 });
    await i.activate(t);
    await uploadAsCustomer(t, c.apiKey, bundle).expect(200);
  });

  test('when a bundle names another customer, then 422 BUNDLE_WRONG_CUSTOMER, by that other customer’s key and by an admin for the other customer; its own customer’s upload is applied', async () => {
    const i = await instance();
    const other = await licensed();
    const bundle = await i.export(bundleEvents(2));
    const byKey = await uploadAsCustomer(t, other.apiKey, bundle);
    expectError(byKey, 422, 'BUNDLE_WRONG_CUSTOMER');
    expect(byKey.body.error.message).not.toContain(i.customer.id);
    expectError(await uploadAsAdmin(t, other.id, bundle), 422, 'BUNDLE_WRONG_CUSTOMER');
    expect(await snapshot(other.id)).toEqual({ events: 0, bundles: 0 });
    expect(await snapshot(i.customer.id)).toEqual({ events: 0, bundles: 0 });
    // The refused admin upload is audited as a failure, with its code only.
    const failed = await t.db('audit_log').where({ action: 'usage.bundle_upload', outcome: 'failure', target_id: other.id });
    expect(failed.map((r) => r.details)).toEqual([{ code: 'BUNDLE_WRONG_CUSTOMER' }]);
    // Controls: by its own customer's key, and by an admin for it.
    await uploadAsCustomer(t, i.customer.apiKey, bundle).expect(200);
    await uploadAsAdmin(t, i.customer.id, bundle).expect(200);
  });

  test('when the instance was released by the customer (or an admin), then 409 INSTANCE_DEACTIVATED; released as stale, its bundles are still applied', async () => {
    const deactivated = await instance();
    await request(t.app).delete(`/api/licenses/activations/${deactivated.fingerprint}`).set('X-API-Key', deactivated.customer.apiKey).expect(200);
    const byAdmin = await instance();
    await request(t.app).delete(`/api/customers/${byAdmin.customer.id}/activations/${byAdmin.fingerprint}`).set(admin).expect(200);
    for (const i of [deactivated, byAdmin]) {
      expectError(await uploadAsCustomer(t, i.customer.apiKey, await i.export(bundleEvents(2))), 409, 'INSTANCE_DEACTIVATED');
      expect(await snapshot(i.customer.id)).toEqual({ events: 0, bundles: 0 });
    }

    // Control: an instance that went silent (air-gapped) is released as stale by the sweep; it still counts.
    const silent = await instance();
    await t
      .db('license_activations')
      .where({ customer_id: silent.customer.id, fingerprint: silent.fingerprint })
      .update({ last_seen_at: new Date(Date.now() - 400 * 86_400_000) });
    await t.c.licenses.sweep();
    const released = await t.db('license_activations').where({ customer_id: silent.customer.id, fingerprint: silent.fingerprint }).first();
    expect(released!.release_reason).toBe('stale');
    const res = await uploadAsCustomer(t, silent.customer.apiKey, await silent.export(bundleEvents(2))).expect(200);
    expect(res.body.receipt_claims.applied).toBe(2);
    // Its fresh license brings it back, with its key.
    expect(res.body.claims.instance).toBe(silent.fingerprint);
    const live = await t.db('license_activations').where({ customer_id: silent.customer.id, fingerprint: silent.fingerprint }).whereNull('released_at').first();
    expect(live!.instance_key_thumbprint).toBe(silent.key.thumbprint);
  });

  test('when a bundle_id comes again with other content, then 409 BUNDLE_CONFLICT and nothing of it is stored', async () => {
    const i = await instance();
    const first = await i.export(bundleEvents(1));
    await uploadAsCustomer(t, i.customer.apiKey, first).expect(200);
    const before = await snapshot(i.customer.id);
    const again = await signBundle(i.nextPayload(bundleEvents(2), { bundle_id: i.bundleIds[0], seq: 1, previous: null }), i.key);
    expectError(await uploadAsCustomer(t, i.customer.apiKey, again), 409, 'BUNDLE_CONFLICT');
    await expectNothingStored(i.customer.id, before);
  });

  describe('a text that is not a bundle of this format', () => {
    let i: Instance;
    beforeAll(async () => {
      i = await instance();
    });

    const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
    const withPayload = (over: Record<string, unknown>) => signBundle({ ...i.nextPayload(bundleEvents(1)), ...over }, i.key);
    const withoutField = (field: string) => {
      const p: Record<string, unknown> = { ...i.nextPayload(bundleEvents(1)) };
      delete p[field];
      return signBundle(p, i.key);
    };
    const MARK = 'xmarkx';
    /** A payload whose customer_id is only inside a "__proto__" member: JSON.parse makes that an own field, never a prototype. */
    const protoCustomer = () => {
      const { customer_id: id, ...rest } = i.nextPayload([]);
      return signBundle(JSON.stringify(rest).replace(/^\{/, `{"__proto__":{"customer_id":"${id}"},`), i.key);
    };

    test.each<[string, string, () => Promise<string>]>([
      ['not a JWS', 'bundle', async () => 'hello'],
      ['two parts', 'bundle', async () => `${b64({ alg: 'EdDSA' })}.${b64({})}`],
      ['four parts', 'bundle', async () => `${await withPayload({})}.abc`],
      ['a part that is not base64url', 'bundle', async () => (await withPayload({})).replace('.', '.+')],
      ['a header that is not JSON', 'bundle.header', async () => `${b64('{nope')}.${b64({})}.${'A'.repeat(86)}`],
      ['a header that is an array', 'bundle.header', async () => `${b64([1])}.${b64({})}.${'A'.repeat(86)}`],
      [
        'alg HS256',
        'bundle.header.alg',
        async () => `${b64({ alg: 'HS256', typ: 'usage-bundle+jws', kid: i.key.thumbprint })}.${b64(i.nextPayload([]))}.${'A'.repeat(43)}`,
      ],
      ['alg none', 'bundle.header.alg', async () => `${b64({ alg: 'none', typ: 'usage-bundle+jws', kid: i.key.thumbprint })}.${b64(i.nextPayload([]))}.A`],
      ['another typ', 'bundle.header.typ', async () => signBundle(i.nextPayload([]), i.key, { typ: 'license+jwt' })],
      ['no kid', 'bundle.header.kid', async () => signBundle(i.nextPayload([]), i.key, { kid: undefined })],
      ['a kid that is a number', 'bundle.header.kid', async () => signBundle(i.nextPayload([]), i.key, { kid: 12345 })],
      ['a payload that is not JSON', 'bundle.payload', async () => signBundle(`{"format": ${MARK}`, i.key)],
      ['a payload that is a list', 'bundle.payload', async () => signBundle('[1,2]', i.key)],
      ['another format', 'bundle.payload.format', async () => withPayload({ format: `usage-bundle/2${MARK}` })],
      [
        'customer_id a number',
        'bundle.payload.customer_id',
        async () => signBundle(JSON.stringify(i.nextPayload([])).replace(/"customer_id":"[^"]+"/, '"customer_id":12345678901234567890'), i.key),
      ],
      ['customer_id an object', 'bundle.payload.customer_id', async () => withPayload({ customer_id: { id: MARK } })],
      ['customer_id a very long string', 'bundle.payload.customer_id', async () => withPayload({ customer_id: MARK.repeat(20_000) })],
      ['customer_id a near-UUID', 'bundle.payload.customer_id', async () => withPayload({ customer_id: '01900000-0000-7000-8000-00000000000g' })],
      ['no customer_id', 'bundle.payload.customer_id', () => withoutField('customer_id')],
      ['its customer_id only under __proto__', 'bundle.payload.customer_id', () => protoCustomer()],
      ['bundle_id not a UUID', 'bundle.payload.bundle_id', async () => withPayload({ bundle_id: `${MARK}` })],
      ['a fingerprint too short', 'bundle.payload.fingerprint', async () => withPayload({ fingerprint: 'abc' })],
      ['seq 0', 'bundle.payload.seq', async () => withPayload({ seq: 0 })],
      ['seq 1.5', 'bundle.payload.seq', async () => withPayload({ seq: 1.5 })],
      ['seq 2^31', 'bundle.payload.seq', async () => withPayload({ seq: 2 ** 31 })],
      ['seq a string', 'bundle.payload.seq', async () => withPayload({ seq: '1' })],
      ['previous not a digest', 'bundle.payload.previous', async () => withPayload({ previous: MARK })],
      ['created_at not a date', 'bundle.payload.created_at', async () => withPayload({ created_at: MARK })],
      ['created_at without a zone', 'bundle.payload.created_at', async () => withPayload({ created_at: '2026-12-01T10:00:00' })],
      ['events not a list', 'bundle.payload.events', async () => withPayload({ events: { 0: MARK } })],
      ['an event that is not an object', 'bundle.payload.events.0', async () => withPayload({ events: [MARK] })],
      [
        'an event without a key',
        'bundle.payload.events.0.idempotency_key',
        async () => withPayload({ events: [{ metric: 'api_calls', quantity: 1, occurred_at: new Date().toISOString() }] }),
      ],
      [
        'an event key that is a number',
        'bundle.payload.events.0.idempotency_key',
        async () => withPayload({ events: [{ ...bundleEvents(1)[0], idempotency_key: 7 }] }),
      ],
      [
        'an event key too long',
        'bundle.payload.events.0.idempotency_key',
        async () => withPayload({ events: [{ ...bundleEvents(1)[0], idempotency_key: MARK.repeat(60) }] }),
      ],
    ])('when the bundle has %s, then 422 VALIDATION_FAILED naming %s, quoting nothing of it, storing nothing', async (_label, path, make) => {
      const before = await snapshot(i.customer.id);
      const res = await uploadAsCustomer(t, i.customer.apiKey, await make());
      expectError(res, 422, 'VALIDATION_FAILED');
      expect(res.body.error.details.map((d: { path: string }) => d.path)).toContain(path);
      expect(JSON.stringify(res.body)).not.toContain(MARK);
      await expectNothingStored(i.customer.id, before);
    });

    test('when the body is not {bundle: <text>}, then 422; control: the same bundle as text is applied', async () => {
      const bundle = await i.export(bundleEvents(1));
      for (const body of [{}, { bundle: 5 }, { bundle: '' }, { bundle: payloadOf(bundle) }, { bundle, extra: 1 }]) {
        expectError(await request(t.app).post('/api/usage/bundles').set('X-API-Key', i.customer.apiKey).send(body), 422, 'VALIDATION_FAILED');
      }
      await uploadAsCustomer(t, i.customer.apiKey, bundle).expect(200);
    });
  });
});

describe('gaps', () => {
  const view = async (i: Instance, as: 'admin' | 'customer') => {
    const res =
      as === 'admin'
        ? await request(t.app).get(`/api/customers/${i.customer.id}/activations`).set(admin).expect(200)
        : await request(t.app).get('/api/licenses/activations').set('X-API-Key', i.customer.apiKey).expect(200);
    return res.body.data.find((a: { fingerprint: string }) => a.fingerprint === i.fingerprint).bundles;
  };

  test('when seq 1 and 3 are uploaded, then 3 is applied, its receipt says 2 is missing, a usage.bundle_gap event is written and the activations show it; seq 2 fills it', async () => {
    const i = await instance();
    expect(await view(i, 'admin')).toBeNull();
    const one = await i.export(bundleEvents(1, { prefix: 's1' }));
    const two = await i.export(bundleEvents(1, { prefix: 's2' }));
    const three = await i.export(bundleEvents(2, { prefix: 's3' }));
    await uploadAsCustomer(t, i.customer.apiKey, one).expect(200);
    expect(await gapEvents(i.customer.id)).toEqual([]);

    const r3 = await uploadAsCustomer(t, i.customer.apiKey, three).expect(200);
    expect(r3.body.receipt_claims).toMatchObject({ seq: 3, applied: 2, missing_seq: [2], previous_mismatch: false });
    const gaps = await gapEvents(i.customer.id);
    expect(gaps.map((e) => e.data)).toEqual([
      { customer_id: i.customer.id, fingerprint: i.fingerprint, bundle_id: i.bundleIds[2], seq: 3, missing_seq: [2], previous_mismatch: false },
    ]);
    for (const as of ['admin', 'customer'] as const) {
      const b = await view(i, as);
      expect(b).toEqual({ last_seq: 3, last_upload_at: expect.any(String), missing_seq: [2] });
    }

    const r2 = await uploadAsCustomer(t, i.customer.apiKey, two).expect(200);
    expect(r2.body.receipt_claims).toMatchObject({ seq: 2, applied: 1, missing_seq: [], previous_mismatch: false });
    expect(await gapEvents(i.customer.id)).toHaveLength(1);
    for (const as of ['admin', 'customer'] as const) expect(await view(i, as)).toMatchObject({ last_seq: 3, missing_seq: [] });
    expect(await storedEvents(i.customer.id)).toBe(4);
  });

  test('when a bundle’s previous is not the digest of the bundle before it held here, then previous_mismatch and a gap event; the right digest is no mismatch', async () => {
    const i = await instance();
    await uploadAsCustomer(t, i.customer.apiKey, await i.export(bundleEvents(1))).expect(200);
    const right = i.last;
    const wrong = await i.export(bundleEvents(1), { previous: digestOf('another bundle') });
    const res = await uploadAsCustomer(t, i.customer.apiKey, wrong).expect(200);
    expect(res.body.receipt_claims).toMatchObject({ seq: 2, applied: 1, missing_seq: [], previous_mismatch: true });
    expect((await gapEvents(i.customer.id)).map((e) => e.data)).toEqual([
      { customer_id: i.customer.id, fingerprint: i.fingerprint, bundle_id: i.bundleIds[1], seq: 2, missing_seq: [], previous_mismatch: true },
    ]);
    // Control: a bundle naming the held bundle's digest.
    const j = await instance();
    await uploadAsCustomer(t, j.customer.apiKey, await j.export(bundleEvents(1))).expect(200);
    expect((await uploadAsCustomer(t, j.customer.apiKey, await j.export(bundleEvents(1))).expect(200)).body.receipt_claims.previous_mismatch).toBe(false);
    expect(right).not.toBeNull();
  });

  test('when the first bundle received has a high seq, then the seqs below it are missing, at most 1,000 listed', async () => {
    const i = await instance();
    const res = await uploadAsCustomer(t, i.customer.apiKey, await i.export(bundleEvents(1), { seq: 2 ** 31 - 1, previous: digestOf('x') })).expect(200);
    expect(res.body.receipt_claims.missing_seq).toHaveLength(1000);
    expect(res.body.receipt_claims.missing_seq.slice(0, 3)).toEqual([1, 2, 3]);
    expect(res.body.receipt_claims.previous_mismatch).toBe(false);
  });
});

describe('the fresh license', () => {
  test('when the customer has no subscription any more, then the receipt comes with license null and license_error saying why', async () => {
    const c = await licensed();
    const i = await instance(c);
    // Gone altogether (a canceled one still gives an expired license).
    await t.db('subscriptions').where({ customer_id: c.id }).delete();
    const res = await uploadAsCustomer(t, c.apiKey, await i.export(bundleEvents(2))).expect(200);
    expect(res.body.receipt_claims.applied).toBe(2);
    expect(res.body).toMatchObject({ license: null, claims: null, license_error: { code: 'LICENSE_NOT_FOUND', message: expect.any(String) } });
    // Control: with a subscription again, the next upload brings one.
    await subscribe(t, { customer: c });
    const next = await uploadAsCustomer(t, c.apiKey, await i.export(bundleEvents(1))).expect(200);
    expect(next.body.license_error).toBeNull();
    expect(next.body.claims.instance).toBe(i.fingerprint);
  });

  test('when every seat is held by other instances, then license_error is INSTANCE_LIMIT_REACHED and the events are applied anyway', async () => {
    const c = await createCustomer(t);
    const plan = await createPlan(t, { entitlements: { features: [], limits: { instances: 1 } } });
    await subscribe(t, { customer: c, plan });
    const silent = await instance(c);
    // It went silent and was released as stale; another instance took the one seat.
    await t
      .db('license_activations')
      .where({ customer_id: c.id, fingerprint: silent.fingerprint })
      .update({ last_seen_at: new Date(Date.now() - 400 * 86_400_000) });
    await t.c.licenses.sweep();
    await instance(c);
    const res = await uploadAsCustomer(t, c.apiKey, await silent.export(bundleEvents(1))).expect(200);
    expect(res.body.receipt_claims.applied).toBe(1);
    expect(res.body.license).toBeNull();
    expect(res.body.license_error.code).toBe('INSTANCE_LIMIT_REACHED');
  });
});

describe('late usage, Stripe off', () => {
  test('when events are older than the subscription’s period, then they are applied, counted late, stay local, and are recorded as local true-ups', async () => {
    const c = await licensed();
    await backdate(c.id, 60);
    const i = await instance(c);
    const old = bundleEvents(2, { prefix: 'old', agoMs: 40 * 86_400_000, quantity: '1.5' });
    const res = await uploadAsCustomer(t, c.apiKey, await i.export([...old, ...bundleEvents(1, { prefix: 'new', agoMs: 0 })])).expect(200);
    expect(res.body.receipt_claims).toMatchObject({ applied: 3, late: 2 });
    expect((await t.db('usage_events').where({ customer_id: c.id })).map((r) => r.state)).toEqual(['l', 'l', 'l']);
    const trueUps = await t.db('usage_true_ups').where({ customer_id: c.id });
    expect(trueUps.map((r) => [r.bundle_id, r.metric, Number(r.quantity), r.events, r.state])).toEqual([[i.bundleIds[0], 'api_calls', 3, 2, 'local']]);
  });
});

describe('late usage, Stripe on', () => {
  let app: StripeApp;
  beforeAll(async () => {
    app = await startStripeApp({ USAGE_METRICS: 'api_calls,storage_gb' });
  });
  afterAll(() => app.close());

  test('when events occurred before the subscription’s current period (1 hour ago) or 40 days ago, then they are stored late, never sent as meter events, with one true-up per metric; the others are forwarded', async () => {
    const s = app.t;
    const plan = await createPlan(s, {
      stripe_price_id: `price_${randomBytes(5).toString('hex')}`,
      metered_prices: { api_calls: `price_${randomBytes(5).toString('hex')}` },
    });
    const c = await createCustomer(s);
    await subscribe(s, { customer: c, plan });
    await backdate(c.id, 60, s.db);
    const i = new Instance(c);
    await i.activate(s);
    const hourAgo = bundleEvents(2, { prefix: 'hour', agoMs: 3_600_000, quantity: '2.5' });
    const fortyDays = bundleEvents(1, { prefix: 'forty', agoMs: 40 * 86_400_000, quantity: 4 });
    const storage = bundleEvents(1, { prefix: 'gb', metric: 'storage_gb', agoMs: 3_600_000, quantity: '0.5' });
    const current = bundleEvents(2, { prefix: 'now', agoMs: 0 });
    const bundle = await i.export([...hourAgo, ...fortyDays, ...storage, ...current]);
    const res = await uploadAsCustomer(s, c.apiKey, bundle).expect(200);
    expect(res.body.receipt_claims).toMatchObject({ events: 6, applied: 6, duplicates: 0, rejected: [], late: 4 });

    const rows = await s.db('usage_events').where({ customer_id: c.id }).orderBy('idempotency_key');
    const queued = new Set(await s.db('usage_outbox').where({ customer_id: c.id, state: 'pending' }).pluck('idempotency_key'));
    const state = Object.fromEntries(rows.map((r) => [r.idempotency_key, [r.state, queued.has(r.idempotency_key)]]));
    // Late: a true-up bills them, never the forwarder; the others wait in the outbox.
    for (const e of [...hourAgo, ...fortyDays, ...storage]) expect(state[e.idempotency_key]).toEqual(['t', false]);
    for (const e of current) expect(state[e.idempotency_key]).toEqual(['s', true]);

    const trueUps = await s.db('usage_true_ups').where({ customer_id: c.id }).orderBy('metric');
    expect(trueUps.map((r) => [r.bundle_id, r.metric, Number(r.quantity), r.events, r.state])).toEqual([
      [i.bundleIds[0], 'api_calls', 9, 3, 'pending'],
      [i.bundleIds[0], 'storage_gb', 0.5, 1, 'pending'],
    ]);

    // The forwarder sends the current events as meter events, never the late ones.
    await s.c.forwarder.runOnce();
    const byKey = new Map(rows.map((r) => [r.idempotency_key, r.id]));
    expect(current.map((e) => app.stripe.held.has(byKey.get(e.idempotency_key)!))).toEqual([true, true]);
    expect([...hourAgo, ...fortyDays, ...storage].map((e) => app.stripe.held.has(byKey.get(e.idempotency_key)!))).toEqual([false, false, false, false]);

    // Uploaded again: the same receipt, nothing new, no second true-up.
    expect((await uploadAsAdmin(s, c.id, bundle).expect(200)).body.receipt).toBe(res.body.receipt);
    expect(await s.db('usage_true_ups').where({ customer_id: c.id }).count<{ n: string }[]>({ n: '*' })).toEqual([{ n: '2' }]);
    expect(await s.db('usage_events').where({ customer_id: c.id }).count<{ n: string }[]>({ n: '*' })).toEqual([{ n: '6' }]);
  });
});

describe('limits: USAGE_BUNDLE_MAX_BYTES and USAGE_BUNDLE_MAX_EVENTS', () => {
  let small: TestApp;
  beforeAll(async () => {
    small = await createTestApp({ USAGE_BUNDLE_MAX_BYTES: '3kb', USAGE_BUNDLE_MAX_EVENTS: '3' });
  });
  afterAll(() => small.close());

  async function smallInstance(): Promise<Instance> {
    const c = await createCustomer(small);
    await subscribe(small, { customer: c });
    const i = new Instance(c);
    await i.activate(small);
    return i;
  }

  test('when a bundle holds more events than allowed, then 413 PAYLOAD_TOO_LARGE saying the limit and nothing is stored; at the limit it is applied', async () => {
    const i = await smallInstance();
    const res = await uploadAsCustomer(small, i.customer.apiKey, await signBundle(i.nextPayload(bundleEvents(4)), i.key));
    expectError(res, 413, 'PAYLOAD_TOO_LARGE');
    expect(res.body.error.message).toMatch(/at most 3 events \(USAGE_BUNDLE_MAX_EVENTS\)/);
    expect(await small.db('usage_events').where({ customer_id: i.customer.id }).count<{ n: string }[]>({ n: '*' })).toEqual([{ n: '0' }]);
    expect((await uploadAsCustomer(small, i.customer.apiKey, await i.export(bundleEvents(3))).expect(200)).body.receipt_claims.applied).toBe(3);
  });

  test('when the upload is larger than allowed, then 413 PAYLOAD_TOO_LARGE before anything is read; the same bundle without its padding is applied', async () => {
    const i = await smallInstance();
    const padded = await signBundle(i.nextPayload(bundleEvents(1), { note: 'x'.repeat(4000) }), i.key);
    expectError(await uploadAsCustomer(small, i.customer.apiKey, padded), 413, 'PAYLOAD_TOO_LARGE');
    expectError(
      await request(small.app)
        .post(`/api/customers/${i.customer.id}/usage-bundles`)
        .set('Authorization', `Bearer ${small.adminToken}`)
        .send({ bundle: padded }),
      413,
      'PAYLOAD_TOO_LARGE',
    );
    expect(await small.db('usage_bundles').where({ customer_id: i.customer.id }).count<{ n: string }[]>({ n: '*' })).toEqual([{ n: '0' }]);
    await uploadAsCustomer(small, i.customer.apiKey, await i.export(bundleEvents(1))).expect(200);
  });
});
