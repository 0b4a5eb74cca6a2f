/**
 * Usage bundles on the client side: an air-gapped instance (offline: true) exports what its queue
 * holds as a bundle signed with its instance key, and imports the receipt the service answered.
 * The wire format, the seq/previous chain, re-exports, exactly the bundle's events acknowledged,
 * refused events dead-lettered, the fresh license kept; every forged, replayed or misdirected
 * receipt refused with nothing changed, each with its control; the online flusher in between.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { calculateJwkThumbprint, compactVerify, importJWK } from 'jose';
import {
  BillingClient,
  OfflineModeError,
  ReceiptError,
  type BillingClientOptions,
  type BundleReceiptClaims,
  type ClientLicenseOptions,
} from '../../packages/client';
import { answerJson, FP, freshLicense, nowSec, readBundle, receiptClaims, signReceipt, type ReadBundle } from './bundle-fixtures';
import { FakeUsageService } from './fake-usage-service';
import { CUSTOMER, ISSUER, jwksOf, makeKey, signKeySet, withPayload, type TestKey } from './license-fixtures';

let key: TestKey;
let work: string;
let queueDir: string;
let licenseDir: string;
const open: BillingClient[] = [];

const client = (o: Partial<BillingClientOptions> = {}, license: ClientLicenseOptions = {}) => {
  const c = new BillingClient({
    offline: true,
    queueDir,
    ...o,
    license: { customerId: CUSTOMER, fingerprint: FP, dir: licenseDir, trustedKeys: jwksOf(key), issuer: ISSUER, ...license },
  });
  open.push(c);
  return c;
};
const ev = (i: number, quantity: number | string = 1) => ({ metric: 'api_calls', quantity, idempotency_key: `ev-${i}` });
const file = (name: string) => path.join(work, name);
const deadLetterKeys = async (c: BillingClient) => (await c.deadLetters()).map((d) => d.event?.idempotency_key);
const stateOf = () => JSON.parse(fs.readFileSync(path.join(queueDir, 'usage-bundles.json'), 'utf8'));

/** Exports to `name` and reads the file back. */
async function exported(c: BillingClient, name: string): Promise<ReadBundle> {
  await c.exportUsage(file(name));
  return readBundle(file(name));
}

/** The answer a connected machine would carry back for `bundle`, in a file. */
async function answerFor(bundle: ReadBundle, o: Partial<BundleReceiptClaims> = {}, license?: string | null, name = 'answer.json'): Promise<string> {
  const c = receiptClaims(bundle, o);
  fs.writeFileSync(file(name), answerJson(await signReceipt(key, c), c, license === undefined ? await freshLicense(key) : license));
  return file(name);
}

beforeAll(async () => (key = await makeKey('license-k1')));
beforeEach(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-bundles-'));
  queueDir = path.join(work, 'queue');
  licenseDir = path.join(work, 'license');
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
  fs.rmSync(work, { recursive: true, force: true });
});

describe('exporting usage', () => {
  test('when usage is exported, then the file is a compact JWS in the wire format, signed by the instance key the activation request carries, and the events stay queued', async () => {
    const c = client();
    await c.reportUsage([ev(1), ev(2, '1.5'), { metric: 'storage_gb', quantity: 3, idempotency_key: 'ev-3', occurred_at: '2026-01-02T03:04:05.000Z' }]);
    const summary = await c.exportUsage(file('bundle-1.jws'));
    const text = fs.readFileSync(file('bundle-1.jws'), 'utf8');
    expect(text).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\n$/);
    const b = readBundle(file('bundle-1.jws'));

    const request = await c.activationRequest({ name: 'vault' });
    expect(request).toEqual({
      format: 'activation-request/1',
      customer_id: CUSTOMER,
      instance_key_thumbprint: await c.instanceKeyThumbprint(),
      body: { fingerprint: FP, name: 'vault', instance_key: { kty: 'OKP', crv: 'Ed25519', x: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) } },
    });
    expect(JSON.stringify(request)).not.toMatch(/"d"/);
    expect(await calculateJwkThumbprint(request.body.instance_key, 'sha256')).toBe(request.instance_key_thumbprint);
    expect(b.header).toEqual({ alg: 'EdDSA', typ: 'usage-bundle+jws', kid: request.instance_key_thumbprint });
    const verified = await compactVerify(text.trim(), await importJWK(request.body.instance_key, 'EdDSA'));
    expect(JSON.parse(new TextDecoder().decode(verified.payload))).toEqual(b.payload);

    expect(b.payload).toEqual({
      format: 'usage-bundle/1',
      customer_id: CUSTOMER,
      fingerprint: FP,
      bundle_id: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/),
      seq: 1,
      previous: null,
      created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      events: [
        { metric: 'api_calls', quantity: 1, idempotency_key: 'ev-1', occurred_at: expect.any(String) },
        { metric: 'api_calls', quantity: '1.5', idempotency_key: 'ev-2', occurred_at: expect.any(String) },
        { metric: 'storage_gb', quantity: 3, idempotency_key: 'ev-3', occurred_at: '2026-01-02T03:04:05.000Z' },
      ],
    });
    // Exactly as the queue holds them (the segment's lines).
    const lines = fs
      .readFileSync(path.join(queueDir, 'segment-000000000000.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(b.payload.events).toEqual(lines);
    expect(summary).toEqual({
      file: file('bundle-1.jws'),
      bundleId: b.payload.bundle_id,
      seq: 1,
      previous: null,
      digest: b.digest,
      createdAt: b.payload.created_at,
      events: 3,
      remaining: 0,
    });
    expect(await c.queued()).toMatchObject({ events: 3 });
    expect(fs.statSync(file('bundle-1.jws')).mode & 0o777).toBe(0o600);
    // Nothing but the bundle in its folder: no temporary file left.
    expect(fs.readdirSync(work).filter((f) => f.startsWith('.'))).toEqual([]);
  });

  test('when usage is exported three times, then seq counts 1, 2, 3, each previous is the digest of the one before, and a re-export carries the still-queued events with the new ones', async () => {
    const c = client();
    await c.reportUsage([ev(1), ev(2), ev(3)]);
    const b1 = await exported(c, 'b1.jws');
    await c.reportUsage([ev(4), ev(5)]);
    const b2 = await exported(c, 'b2.jws');
    const b3 = await exported(c, 'b3.jws');
    expect([b1, b2, b3].map((b) => b.payload.seq)).toEqual([1, 2, 3]);
    expect([b1, b2, b3].map((b) => b.payload.previous)).toEqual([null, b1.digest, b2.digest]);
    expect(new Set([b1, b2, b3].map((b) => b.payload.bundle_id)).size).toBe(3);
    expect(b1.payload.events.map((e) => e.idempotency_key)).toEqual(['ev-1', 'ev-2', 'ev-3']);
    expect(b2.payload.events.map((e) => e.idempotency_key)).toEqual(['ev-1', 'ev-2', 'ev-3', 'ev-4', 'ev-5']);
    expect(b3.payload.events).toEqual(b2.payload.events);
    expect(await c.queued()).toMatchObject({ events: 5 });

    // The state: the seq counter, the last digest, each bundle with its digest and where it ends in the queue.
    const state = stateOf();
    expect(state).toMatchObject({ version: 1, customer_id: CUSTOMER, fingerprint: FP, seq: 3, last_digest: b3.digest, exporting: null });
    expect(state.bundles.map((r: { seq: number; digest: string; events: number; imported_at: null }) => [r.seq, r.digest, r.events, r.imported_at])).toEqual([
      [1, b1.digest, 3, null],
      [2, b2.digest, 5, null],
      [3, b3.digest, 5, null],
    ]);
    expect(fs.statSync(path.join(queueDir, 'usage-bundles.json')).mode & 0o777).toBe(0o600);

    // A new client on the same folder (a restart) continues the chain.
    await c.close();
    const b4 = await exported(client(), 'b4.jws');
    expect([b4.payload.seq, b4.payload.previous]).toEqual([4, b3.digest]);
  });

  test('when the queue holds more than maxEvents, then the oldest go, the rest are counted as remaining, and the receipt acknowledges only those', async () => {
    const c = client();
    await c.reportUsage([1, 2, 3, 4, 5].map((i) => ev(i)));
    expect(await c.exportUsage(file('b1.jws'), { maxEvents: 2 })).toMatchObject({ events: 2, remaining: 3 });
    const b1 = readBundle(file('b1.jws'));
    expect(b1.payload.events.map((e) => e.idempotency_key)).toEqual(['ev-1', 'ev-2']);
    expect(await c.importReceipt(await answerFor(b1))).toMatchObject({ acknowledged: 2 });
    expect(await c.queued()).toMatchObject({ events: 3 });
    // And by size: a file of at most 900 bytes holds two of them (one is about 720 bytes, each more about 135).
    expect(await c.exportUsage(file('b2.jws'), { maxBytes: 900 })).toMatchObject({ seq: 2, events: 2, remaining: 1 });
    expect(fs.statSync(file('b2.jws')).size).toBeLessThanOrEqual(900);
    expect(fs.statSync(file('b2.jws')).size).toBeGreaterThan(900 - 135);
  });

  test('when the queue is empty, then the bundle has no events (it still brings back a receipt and a fresh license), and its receipt acknowledges nothing', async () => {
    const c = client();
    await c.reportUsage(ev(1));
    const b0 = await exported(c, 'b0.jws');
    await c.importReceipt(await answerFor(b0));
    const b1 = await exported(c, 'b1.jws');
    expect(b1.payload).toMatchObject({ seq: 2, previous: b0.digest, events: [] });
    await c.reportUsage(ev(2));
    expect(await c.importReceipt(await answerFor(b1, {}, undefined, 'a1.json'))).toMatchObject({ acknowledged: 0, deadLettered: 0 });
    expect(await c.queued()).toMatchObject({ events: 1 });
  });

  test('when the export cannot be written (its folder does not exist), then it fails, nothing is recorded, and the next export takes seq 1', async () => {
    const c = client();
    await c.reportUsage(ev(1));
    await expect(c.exportUsage(path.join(work, 'missing', 'b.jws'))).rejects.toThrow(/ENOENT/);
    expect(stateOf()).toMatchObject({ seq: 0, exporting: null, bundles: [] });
    expect((await exported(c, 'b.jws')).payload.seq).toBe(1);
  });

  test('when the customer id or the fingerprint is not known, then exporting is a TypeError; a later export with another identity is refused (one chain per queue folder)', async () => {
    const c = client({}, { customerId: undefined, fingerprint: undefined });
    await c.reportUsage(ev(1));
    await expect(c.exportUsage(file('b.jws'))).rejects.toThrow(/customer id/);
    await c.close();
    const d = client({}, { fingerprint: undefined });
    await expect(d.exportUsage(file('b.jws'))).rejects.toThrow(/fingerprint/);
    await d.close();
    await client().exportUsage(file('b.jws'));
    await open.pop()!.close();
    // Later exports know the identity from the first one...
    const e = client({}, { customerId: undefined, fingerprint: undefined });
    expect((await e.exportUsage(file('b2.jws'))).seq).toBe(2);
    await e.close();
    // ...and refuse another.
    await expect(client({}, { fingerprint: 'another-instance-01' }).exportUsage(file('b3.jws'))).rejects.toThrow(/one instance's/);
    expect(stateOf().seq).toBe(2);
  });
});

describe('importing a receipt', () => {
  test('when the receipt of a bundle is imported, then exactly its events leave the queue (those queued after stay), the rejected ones are dead letters with their reason, and the fresh license is kept', async () => {
    const c = client();
    await c.reportUsage([1, 2, 3, 4].map((i) => ev(i)));
    const b1 = await exported(c, 'b1.jws');
    await c.reportUsage([ev(5), ev(6)]);
    const license = await freshLicense(key);
    const answer = await answerFor(b1, { rejected: [{ idempotency_key: 'ev-2', reason: 'metric api_calls is not on the plan' }], missing_seq: [] }, license);

    const r = await c.importReceipt(answer);
    expect(r).toMatchObject({
      bundleId: b1.payload.bundle_id,
      seq: 1,
      acknowledged: 4,
      deadLettered: 1,
      rejected: 1,
      missingSeq: [],
      previousMismatch: false,
      applied: 3,
      licenseError: null,
      license: { decision: 'full', claims: { instance: FP, sub: CUSTOMER } },
    });
    expect(await c.queued()).toMatchObject({ events: 2 });
    const dead = await c.deadLetters();
    expect(dead).toEqual([
      expect.objectContaining({
        event: expect.objectContaining({ idempotency_key: 'ev-2' }),
        code: 'BUNDLE_REJECTED',
        message: 'metric api_calls is not on the plan',
        details: expect.objectContaining({ bundle_id: b1.payload.bundle_id, seq: 1 }),
      }),
    ]);
    expect(stateOf().bundles[0]).toMatchObject({ imported_at: expect.any(String), receipt_jti: expect.any(String) });
    // The license is kept: a restarted offline instance answers it.
    expect(JSON.parse(fs.readFileSync(path.join(licenseDir, 'license.json'), 'utf8')).token).toBe(license);
    await c.close();
    const after = client();
    expect(await after.getLicense()).toMatchObject({ offline: true, decision: 'full', claims: { instance: FP } });
    // The next bundle carries only what is left.
    expect((await exported(after, 'b2.jws')).payload.events.map((e) => e.idempotency_key)).toEqual(['ev-5', 'ev-6']);
  });

  test('when an older bundle is re-exported and the later bundle’s receipt comes first, then it acknowledges all; the older receipt then acknowledges nothing more and dead-letters nothing twice', async () => {
    const c = client();
    await c.reportUsage([1, 2].map((i) => ev(i)));
    const b1 = await exported(c, 'b1.jws');
    await c.reportUsage(ev(3));
    const b2 = await exported(c, 'b2.jws');
    const rejected = [{ idempotency_key: 'ev-1', reason: 'too old' }];
    expect(await c.importReceipt(await answerFor(b2, { rejected, missing_seq: [1] }, null, 'a2.json'))).toMatchObject({
      acknowledged: 3,
      deadLettered: 1,
      missingSeq: [1],
    });
    expect(await c.importReceipt(await answerFor(b1, { rejected }, null, 'a1.json'))).toMatchObject({ acknowledged: 0, deadLettered: 0, seq: 1 });
    expect(await deadLetterKeys(c)).toEqual(['ev-1']);
    expect(await c.queued()).toMatchObject({ events: 0 });
  });

  test('when the online flusher acknowledged the events between the export and the receipt, then the receipt takes nothing more off the queue and dead-letters nothing it no longer holds', async () => {
    const svc = new FakeUsageService();
    await svc.start();
    try {
      // Exported while offline; then the instance is online again, and its flusher sends everything.
      const offline = client();
      await offline.reportUsage([1, 2, 3].map((i) => ev(i)));
      const b1 = await exported(offline, 'b1.jws');
      await offline.close();
      const c = client({ offline: false, baseUrl: svc.url, apiKey: 'test-key', flushIntervalMs: 3_600_000, maxRetries: 0 });
      await c.flush();
      expect([...svc.stored.keys()]).toEqual(['ev-1', 'ev-2', 'ev-3']);
      expect(await c.queued()).toMatchObject({ events: 0 });
      await c.reportUsage(ev(4));
      const r = await c.importReceipt(await answerFor(b1, { rejected: [{ idempotency_key: 'ev-3', reason: 'x' }] }));
      expect(r).toMatchObject({ acknowledged: 0, deadLettered: 0 });
      expect(await c.queued()).toMatchObject({ events: 1 });
      expect(await c.deadLetters()).toEqual([]);
      // And the other way round: a receipt first, then the flusher sends only what is left.
      const b2 = await exported(c, 'b2.jws');
      await c.reportUsage(ev(5));
      expect(await c.importReceipt(await answerFor(b2, {}, undefined, 'a2.json'))).toMatchObject({ acknowledged: 1 });
      expect(await c.flush()).toMatchObject({ sent: 1 });
      expect(svc.requests.at(-1)).toEqual(['ev-5']);
    } finally {
      await svc.stop();
    }
  });

  test('when the answer carries a license that does not verify, then the receipt still applies, licenseError says why, and the kept license stays; a license the service could not issue is reported the same way', async () => {
    const c = client();
    const kept = await freshLicense(key, { iat: nowSec() - 60 });
    await c.reportUsage([ev(1), ev(2)]);
    const b1 = await exported(c, 'b1.jws');
    await c.importReceipt(await answerFor(b1, {}, kept, 'a0.json'));
    await c.reportUsage(ev(3));
    const b2 = await exported(c, 'b2.jws');
    const otherInstance = await freshLicense(key, { fingerprint: 'another-instance-01' });
    const r = await c.importReceipt(await answerFor(b2, {}, otherInstance));
    expect(r).toMatchObject({ acknowledged: 1, license: null, licenseError: { source: 'client', code: 'WRONG_INSTANCE' } });
    expect(JSON.parse(fs.readFileSync(path.join(licenseDir, 'license.json'), 'utf8')).token).toBe(kept);

    await c.reportUsage(ev(4));
    const b3 = await exported(c, 'b3.jws');
    const c3 = receiptClaims(b3);
    fs.writeFileSync(
      file('a3.json'),
      answerJson(await signReceipt(key, c3), c3, null, { code: 'NO_SUBSCRIPTION', message: 'The customer has no subscription: no license was issued.' }),
    );
    expect(await c.importReceipt(file('a3.json'))).toMatchObject({
      acknowledged: 1,
      license: null,
      licenseError: { source: 'service', code: 'NO_SUBSCRIPTION' },
    });
    expect(await c.queued()).toMatchObject({ events: 0 });
  });

  test('when only the receipt’s JWS is carried back (no answer JSON), then it is imported the same, without a license', async () => {
    const c = client();
    await c.reportUsage([ev(1)]);
    const b1 = await exported(c, 'b1.jws');
    fs.writeFileSync(file('receipt.jws'), `${await signReceipt(key, receiptClaims(b1))}\n`);
    expect(await c.importReceipt(file('receipt.jws'))).toMatchObject({ acknowledged: 1, license: null, licenseError: null });
  });

  test('when the receipt is imported again, then REPLAYED, and nothing changes (queue, dead letters, license, state)', async () => {
    const c = client();
    await c.reportUsage([ev(1), ev(2)]);
    const b1 = await exported(c, 'b1.jws');
    await c.reportUsage(ev(3));
    const answer = await answerFor(b1, { rejected: [{ idempotency_key: 'ev-1', reason: 'x' }] });
    await c.importReceipt(answer);
    const before = {
      queued: await c.queued(),
      dead: await c.deadLetters(),
      state: stateOf(),
      license: fs.readFileSync(path.join(licenseDir, 'license.json'), 'utf8'),
    };
    const err = await c.importReceipt(answer).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReceiptError);
    expect(err).toMatchObject({ code: 'REPLAYED', message: expect.stringMatching(/imported already/) });
    expect({
      queued: await c.queued(),
      dead: await c.deadLetters(),
      state: stateOf(),
      license: fs.readFileSync(path.join(licenseDir, 'license.json'), 'utf8'),
    }).toEqual(before);
  });
});

describe('receipts refused, nothing changed', () => {
  const cases: [string, string, (b: ReadBundle) => Promise<string>][] = [
    ['signed by another key under the trusted kid (forged)', 'BAD_SIGNATURE', async (b) => signReceipt(await makeKey('license-k1'), receiptClaims(b))],
    ['signed by a key the software does not trust', 'UNKNOWN_KEY', async (b) => signReceipt(await makeKey('someone-else'), receiptClaims(b))],
    [
      'a genuine receipt with its claims changed (more applied)',
      'BAD_SIGNATURE',
      async (b) => withPayload(await signReceipt(key, receiptClaims(b)), receiptClaims(b, { rejected: [], applied: 99 })),
    ],
    ['for another instance of the customer', 'WRONG_INSTANCE', async (b) => signReceipt(key, receiptClaims(b, { fingerprint: 'another-instance-01' }))],
    [
      'for another customer',
      'WRONG_CUSTOMER',
      async (b) => signReceipt(key, receiptClaims(b, { sub: '0b0e7a52-5a6e-4b8e-9f35-0c2d6a1b9e77', customer_id: '0b0e7a52-5a6e-4b8e-9f35-0c2d6a1b9e77' })),
    ],
    [
      'naming this customer in sub only',
      'WRONG_CUSTOMER',
      async (b) => signReceipt(key, receiptClaims(b, { customer_id: '0b0e7a52-5a6e-4b8e-9f35-0c2d6a1b9e77' })),
    ],
    [
      'with another bundle_digest (a bundle with this id but other content)',
      'DIGEST_MISMATCH',
      async (b) => signReceipt(key, receiptClaims(b, { bundle_digest: 'A'.repeat(43) })),
    ],
    ['with another seq for the bundle', 'DIGEST_MISMATCH', async (b) => signReceipt(key, receiptClaims(b, { seq: 7 }))],
    [
      'for a bundle this instance never exported',
      'UNKNOWN_BUNDLE',
      async (b) => signReceipt(key, receiptClaims(b, { bundle_id: '3f1d2c4b-0000-4000-8000-000000000000' })),
    ],
    ['from another issuer', 'WRONG_ISSUER', async (b) => signReceipt(key, receiptClaims(b, { iss: 'someone-else' }))],
    ['issued an hour ahead of this clock', 'NOT_YET_VALID', async (b) => signReceipt(key, receiptClaims(b, { iat: nowSec() + 3600 }))],
    ['a license given as a receipt (typ)', 'MALFORMED', async (b) => signReceipt(key, receiptClaims(b), { typ: 'license+jwt' })],
    ['with no typ', 'MALFORMED', async (b) => signReceipt(key, receiptClaims(b), { typ: undefined })],
    ['whose claims are not a receipt’s', 'MALFORMED', async (b) => signReceipt(key, { ...receiptClaims(b), rejected: 'none' })],
    ['not a JWS at all', 'MALFORMED', async () => 'not-a-receipt'],
  ];

  test.each(cases)(
    'when the receipt is %s, then %s and the queue, the dead letters, the license and the state are as they were; the genuine receipt is then accepted',
    async (_what, code, make) => {
      const c = client();
      await c.reportUsage([ev(1), ev(2), ev(3)]);
      const b1 = await exported(c, 'b1.jws');
      fs.writeFileSync(file('bad.json'), answerJson(await make(b1), receiptClaims(b1), await freshLicense(key)));
      const before = { queued: await c.queued(), state: stateOf() };

      const err = await c.importReceipt(file('bad.json')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ReceiptError);
      expect((err as ReceiptError).code).toBe(code);
      expect({ queued: await c.queued(), state: stateOf() }).toEqual(before);
      expect(await c.deadLetters()).toEqual([]);
      expect(fs.existsSync(path.join(licenseDir, 'license.json'))).toBe(false);

      // Control: the genuine receipt of the same bundle.
      expect(await c.importReceipt(await answerFor(b1, { rejected: [{ idempotency_key: 'ev-3', reason: 'x' }] }))).toMatchObject({
        acknowledged: 3,
        deadLettered: 1,
      });
      expect(await c.queued()).toMatchObject({ events: 0 });
    },
  );

  test('when this clock was wound back before the newest license accepted, then CLOCK_ROLLED_BACK and nothing changes; once the mark is reset (an operator), the same receipt is accepted', async () => {
    const c = client();
    await c.reportUsage([ev(1)]);
    const b1 = await exported(c, 'b1.jws');
    const answer = await answerFor(b1);
    fs.writeFileSync(path.join(licenseDir, 'license-mark.json'), JSON.stringify({ version: 1, iat: nowSec() + 7200, jti: 'from-the-future' }), { mode: 0o600 });
    const err = await c.importReceipt(answer).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'ReceiptError', code: 'CLOCK_ROLLED_BACK' });
    expect(await c.queued()).toMatchObject({ events: 1 });
    expect(stateOf().bundles[0].imported_at).toBeNull();

    fs.rmSync(path.join(licenseDir, 'license-mark.json'));
    expect(await c.importReceipt(answer)).toMatchObject({ acknowledged: 1 });
  });

  test('when the software trusts only a root, then a receipt signed by a key of a root-signed key set carried in verifies, and one of an unsigned key does not', async () => {
    const root = await makeKey('root-1');
    const signer = await makeKey('license-k2');
    const keySet = await signKeySet(root, [signer], { iat: nowSec() });
    const c = client({}, { trustedKeys: undefined, trustedRoots: jwksOf(root), keySet });
    await c.reportUsage([ev(1)]);
    const b1 = await exported(c, 'b1.jws');
    fs.writeFileSync(file('a.json'), answerJson(await signReceipt(key, receiptClaims(b1)), receiptClaims(b1), null));
    await expect(c.importReceipt(file('a.json'))).rejects.toMatchObject({ code: 'UNKNOWN_KEY' });
    fs.writeFileSync(file('a.json'), answerJson(await signReceipt(signer, receiptClaims(b1)), receiptClaims(b1), null));
    expect(await c.importReceipt(file('a.json'))).toMatchObject({ acknowledged: 1 });
  });
});

describe('offline only', () => {
  test('when a client is made without baseUrl or apiKey, then it is a TypeError unless offline: true; offline, every call that needs the service is OfflineModeError and nothing is sent', async () => {
    const env = { url: process.env.BILLING_API_URL, key: process.env.BILLING_API_KEY };
    delete process.env.BILLING_API_URL;
    delete process.env.BILLING_API_KEY;
    try {
      expect(() => new BillingClient({ queueDir })).toThrow(/baseUrl is required.*offline: true/);
      expect(() => new BillingClient({ baseUrl: 'http://127.0.0.1:9', queueDir })).toThrow(/apiKey is required/);
      const sent: string[] = [];
      const fetchSpy: typeof fetch = (input) => {
        sent.push(input instanceof Request ? input.url : String(input));
        return Promise.reject(new Error('no network here'));
      };
      const c = client({ fetch: fetchSpy });
      expect(c.baseUrl).toBe('');
      await c.reportUsage(ev(1));
      for (const call of [() => c.me(), () => c.flush(), () => c.activate(), () => c.invoices(), () => c.uploadUsageBundle('x.y.z'), () => c.getLicense()]) {
        const err = await call().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(OfflineModeError);
        expect((err as Error).message).toMatch(/offline only/);
      }
      const noQueue = new BillingClient({ offline: true });
      await expect(noQueue.reportUsage(ev(2))).rejects.toBeInstanceOf(OfflineModeError);
      expect(sent).toEqual([]);
      // Offline it still exports and imports; getLicense answers the license kept from a receipt.
      const b1 = await exported(c, 'b1.jws');
      await c.importReceipt(await answerFor(b1));
      expect(await c.getLicense()).toMatchObject({ offline: true, decision: 'full' });
      expect(sent).toEqual([]);
    } finally {
      if (env.url !== undefined) process.env.BILLING_API_URL = env.url;
      if (env.key !== undefined) process.env.BILLING_API_KEY = env.key;
    }
  });

  test('when an offline client is given an API key, then the customer id comes from it', async () => {
    const c = client({ apiKey: `cust_${CUSTOMER}_${'s'.repeat(43)}` }, { customerId: undefined });
    await c.reportUsage(ev(1));
    expect((await exported(c, 'b.jws')).payload.customer_id).toBe(CUSTOMER);
  });
});

describe('the instance key', () => {
  test('when the instance key is made, then it is 0600 beside the queue, made once (concurrent first uses agree), and read back by the next client', async () => {
    const clients = [1, 2, 3, 4, 5].map(() => new BillingClient({ offline: true, queueDir }));
    const thumbprints = await Promise.all(clients.map((c) => c.instanceKeyThumbprint()));
    await Promise.all(clients.map((c) => c.close()));
    expect(new Set(thumbprints).size).toBe(1);
    const keyFile = path.join(queueDir, 'instance-key.json');
    expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(fs.statSync(keyFile).nlink).toBe(1);
    expect(fs.readdirSync(queueDir).filter((f) => f.includes('instance-key') && f !== 'instance-key.json')).toEqual([]);
    const stored = JSON.parse(fs.readFileSync(keyFile, 'utf8'));
    expect(stored).toMatchObject({ version: 1, kty: 'OKP', crv: 'Ed25519', x: expect.any(String), d: expect.any(String) });
    expect(await client().instanceKeyThumbprint()).toBe(thumbprints[0]);
  });

  test('when the key file can be read or changed by group or others, then UnsafePathError (mode) and it is not replaced; made 0600 again, it is used', async () => {
    const first = await client().instanceKeyThumbprint();
    await open.pop()!.close();
    const keyFile = path.join(queueDir, 'instance-key.json');
    const content = fs.readFileSync(keyFile, 'utf8');
    for (const mode of [0o644, 0o620, 0o660, 0o604]) {
      fs.chmodSync(keyFile, mode);
      const c = client();
      await expect(c.instanceKeyThumbprint()).rejects.toMatchObject({ name: 'UnsafePathError', reason: 'mode' });
      await expect(c.exportUsage(file('b.jws'))).rejects.toMatchObject({ name: 'UnsafePathError' });
      await c.close();
    }
    expect(fs.readFileSync(keyFile, 'utf8')).toBe(content);
    expect(fs.existsSync(file('b.jws'))).toBe(false);
    fs.chmodSync(keyFile, 0o600);
    expect(await client().instanceKeyThumbprint()).toBe(first);
  });

  test('when the key file belongs to another user (checked where this runs as root), or is a symbolic link, then UnsafePathError and nothing is read through it; its own file is used', async () => {
    const thumbprint = await client().instanceKeyThumbprint();
    await open.pop()!.close();
    const keyFile = path.join(queueDir, 'instance-key.json');
    if (process.getuid?.() === 0) {
      fs.chownSync(keyFile, 65534, 65534);
      await expect(client().instanceKeyThumbprint()).rejects.toMatchObject({ name: 'UnsafePathError', reason: 'owner' });
      fs.chownSync(keyFile, 0, 0);
    }
    fs.renameSync(keyFile, file('elsewhere.json'));
    fs.symlinkSync(file('elsewhere.json'), keyFile);
    await expect(client().instanceKeyThumbprint()).rejects.toMatchObject({ name: 'UnsafePathError', reason: 'symlink' });
    fs.rmSync(keyFile);
    fs.renameSync(file('elsewhere.json'), keyFile);
    expect(await client().instanceKeyThumbprint()).toBe(thumbprint);
  });

  test('when the key file is damaged, then InstanceKeyError and it is never replaced by a new key', async () => {
    fs.mkdirSync(queueDir, { mode: 0o700 });
    const keyFile = path.join(queueDir, 'instance-key.json');
    fs.writeFileSync(keyFile, '{"version":1,"kty":"OKP"', { mode: 0o600 });
    await expect(client().instanceKeyThumbprint()).rejects.toMatchObject({
      name: 'InstanceKeyError',
      message: expect.stringMatching(/restore it from a backup/),
    });
    // A pair whose public half is not its private key's.
    await open.pop()!.close();
    const other = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-key-'));
    try {
      const real = new BillingClient({ offline: true, queueDir: other });
      await real.instanceKeyThumbprint();
      await real.close();
      const pair = JSON.parse(fs.readFileSync(path.join(other, 'instance-key.json'), 'utf8'));
      const swapped = { ...pair, x: pair.d };
      fs.writeFileSync(keyFile, JSON.stringify(swapped), { mode: 0o600 });
      await expect(client().instanceKeyThumbprint()).rejects.toMatchObject({ name: 'InstanceKeyError', message: expect.stringMatching(/public key/) });
      expect(JSON.parse(fs.readFileSync(keyFile, 'utf8'))).toEqual(swapped);
    } finally {
      fs.rmSync(other, { recursive: true, force: true });
    }
  });
});

describe('activation with the instance key', () => {
  const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

  test('when a client with a queue activates, then the body carries instance_key (its public JWK, no private part); without a queue it carries none', async () => {
    const bodies: Record<string, unknown>[] = [];
    const fakeFetch: typeof fetch = (_input, init) => {
      const body = JSON.parse(init?.body as string) as Record<string, unknown>;
      bodies.push(body);
      return Promise.resolve(json(201, { activation: { fingerprint: body.fingerprint, instance_key_thumbprint: null } }));
    };
    const c = client({ offline: false, baseUrl: 'http://127.0.0.1:9', apiKey: 'k', fetch: fakeFetch, flushIntervalMs: 3_600_000 });
    expect(await c.activate({ name: 'vault' })).toMatchObject({ created: true });
    const stored = JSON.parse(fs.readFileSync(path.join(queueDir, 'instance-key.json'), 'utf8'));
    expect(bodies[0]).toEqual({ fingerprint: FP, name: 'vault', instance_key: { kty: 'OKP', crv: 'Ed25519', x: stored.x } });
    expect(await calculateJwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x: stored.x }, 'sha256')).toBe(await c.instanceKeyThumbprint());

    const noQueue = new BillingClient({ baseUrl: 'http://127.0.0.1:9', apiKey: 'k', fetch: fakeFetch, license: { fingerprint: FP } });
    await noQueue.activate();
    expect(bodies[1]).toEqual({ fingerprint: FP });
    await expect(noQueue.instanceKeyThumbprint()).rejects.toThrow(/queueDir/);
  });

  test('when the service answers 409 INSTANCE_KEY_MISMATCH, then it is a BillingApiError with that code', async () => {
    const fakeFetch: typeof fetch = () =>
      Promise.resolve(json(409, { error: { code: 'INSTANCE_KEY_MISMATCH', message: 'This instance is activated with another key' } }));
    const c = client({ offline: false, baseUrl: 'http://127.0.0.1:9', apiKey: 'k', fetch: fakeFetch, flushIntervalMs: 3_600_000 });
    await expect(c.activate()).rejects.toMatchObject({ name: 'BillingApiError', status: 409, code: 'INSTANCE_KEY_MISMATCH' });
  });
});

describe('uploading a bundle (a connected machine)', () => {
  test('when a bundle is uploaded, then POST /api/usage/bundles carries {bundle: its text} with the API key, and the answer comes back as the service sent it', async () => {
    const c = client();
    await c.reportUsage(ev(1));
    const b1 = await exported(c, 'b1.jws');
    const seen: { url: string; key: string | null; body: unknown }[] = [];
    const answer = {
      receipt: await signReceipt(key, receiptClaims(b1)),
      receipt_claims: receiptClaims(b1),
      license: null,
      claims: null,
      jwks_url: 'x',
      license_error: null,
    };
    const fakeFetch: typeof fetch = (input, init) => {
      seen.push({
        url: input instanceof Request ? input.url : String(input),
        key: new Headers(init?.headers).get('x-api-key'),
        body: JSON.parse(init?.body as string),
      });
      return Promise.resolve(new Response(JSON.stringify(answer), { status: 200, headers: { 'content-type': 'application/json' } }));
    };
    const connected = new BillingClient({ baseUrl: 'http://127.0.0.1:9', apiKey: 'the-key', fetch: fakeFetch });
    expect(await connected.uploadUsageBundle(b1.text.trim())).toEqual(answer);
    expect(seen).toEqual([{ url: 'http://127.0.0.1:9/api/usage/bundles', key: 'the-key', body: { bundle: b1.text.trim() } }]);
  });
});
