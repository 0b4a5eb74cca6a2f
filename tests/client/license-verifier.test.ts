import { createPublicKey } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportSPKI, UnsecuredJWT, type JWK } from 'jose';
import {
  isLicenseError,
  LicenseError,
  memoryLicenseStore,
  trustAnchor,
  verifyLicense,
  type LicenseErrorCode,
  type LicenseStore,
  type VerifyLicenseOptions,
} from '../../packages/client';
import {
  claims,
  CUSTOMER,
  handToken,
  hs256Token,
  ISSUER,
  jwksOf,
  makeKey,
  NOW_MS,
  sign,
  signKeySet,
  signRaw,
  T0,
  withPayload,
  type TestKey,
} from './license-fixtures';

let k1: TestKey;
let k2: TestKey;
let outsider: TestKey;

beforeAll(async () => {
  [k1, k2, outsider] = await Promise.all([makeKey('k1'), makeKey('k2'), makeKey('outsider')]);
});

function opts(extra: Partial<VerifyLicenseOptions> = {}): VerifyLicenseOptions {
  return { trustedKeys: jwksOf(k1, k2), issuer: ISSUER, customerId: CUSTOMER, now: NOW_MS, store: memoryLicenseStore(), ...extra };
}

async function refusal(token: string, options: VerifyLicenseOptions): Promise<LicenseError> {
  try {
    await verifyLicense(token, options);
  } catch (err) {
    if (err instanceof LicenseError) {
      // Never the token, nor any part of it, in what a caller may log.
      for (const part of token.split('.').filter((p) => p.length > 8)) expect(err.message).not.toContain(part);
      return err;
    }
    throw err;
  }
  throw new Error('the license was accepted');
}

async function expectRefused(token: string, options: VerifyLicenseOptions, code: LicenseErrorCode): Promise<void> {
  expect((await refusal(token, options)).code).toBe(code);
}

describe('verifyLicense: a license signed in the license format', () => {
  test('when it is signed by a listed key, then it verifies and says full, with its entitlements', async () => {
    const c = claims({ instance: 'fp-1' });
    const v = await verifyLicense(await sign(k1, c), opts({ fingerprint: 'fp-1', requireBinding: true }));
    expect(v.decision).toBe('full');
    expect(v.expiredBy).toBeNull();
    expect(v.kid).toBe('k1');
    expect(v.claims).toEqual(c);
    expect(v.features).toEqual(['sso']);
    expect(v.limits).toEqual({ api_calls: 100000 });
    expect(v.validUntil).toEqual(new Date((T0 + 30 * 86400) * 1000));
    expect(v.graceUntil).toBeNull();
    expect(v.issuedAt).toEqual(new Date(T0 * 1000));
    expect(v.expiresAt).toEqual(new Date((T0 + 7 * 86400) * 1000));
  });

  test.each([
    ['active', 'full', null],
    ['trialing', 'full', null],
    ['grace', 'grace', null],
    ['expired', 'expired', 'status'],
  ] as const)('when the status is %s, then the decision is %s', async (status, decision, expiredBy) => {
    const graceUntil = status === 'grace' || status === 'expired' ? T0 + 3 * 86400 : null;
    const v = await verifyLicense(await sign(k1, claims({ status, grace_until: graceUntil })), opts());
    expect(v.decision).toBe(decision);
    expect(v.expiredBy).toBe(expiredBy);
    expect(v.graceUntil).toEqual(graceUntil === null ? null : new Date(graceUntil * 1000));
  });

  test('when an old license still carries entitlements.seats (a field the format no longer has), then it verifies and the field is left out', async () => {
    const c = claims();
    const old = { ...c, entitlements: { ...c.entitlements, seats: 5 } };
    const v = await verifyLicense(await sign(k1, old), opts());
    expect(v.decision).toBe('full');
    expect(v.claims).toEqual(c);
    expect(v.claims.entitlements).not.toHaveProperty('seats');
    // Whatever it held, even a value of the wrong type: nothing reads it.
    const odd = await verifyLicense(await sign(k1, { ...c, entitlements: { ...c.entitlements, seats: 'many' } }), opts());
    expect(odd.claims).toEqual(c);
  });

  test('when the license carries metered figures, then they are in the result; a license signed before the claim existed has none ({})', async () => {
    const c = claims();
    const v = await verifyLicense(await sign(k1, c), opts());
    expect(v.metered).toEqual(c.metered);
    expect(v.metered.api_calls).toMatchObject({ allowance: 100000, used: '1234.5', state: 'ok', overage: 'block' });
    const { metered: _m, ...before } = c;
    const old = await verifyLicense(await sign(k1, before), opts());
    expect([old.metered, old.claims.metered]).toEqual([{}, {}]);
    const tolerated = { ...c.metered.api_calls!, used: '110000', overage: 1.25, state: 'over_tolerated', blocks_at: '125000', percent: 110 };
    expect((await verifyLicense(await sign(k1, { ...c, metered: { api_calls: tolerated } }), opts())).metered.api_calls).toEqual(tolerated);
  });

  test.each([
    ['metered', 'all'],
    ['metered.api_calls', 5],
    ['allowance', '100'],
    ['allowance', -1],
    ['used', 12.5],
    ['used', '1e3'],
    ['percent', '10'],
    ['thresholds', [80, '100']],
    ['thresholds_crossed', null],
    ['overage', 'stop'],
    ['overage', 0.5],
    ['blocks_at', 100],
    ['state', 'fine'],
  ])('when the metered claim’s %s is %j, then MALFORMED (every field the instance acts on is type-checked)', async (field, value) => {
    const c = claims();
    const metered =
      field === 'metered' ? value : field === 'metered.api_calls' ? { api_calls: value } : { api_calls: { ...c.metered.api_calls, [field]: value } };
    await expectRefused(await sign(k1, { ...c, metered }), opts(), 'MALFORMED');
  });

  test('when the license has no subscription, usage nor valid_until (default plan), then it verifies', async () => {
    const c = claims({ subscription: null, usage: null, valid_until: null, entitlements: { features: [], limits: { api_calls: null } } });
    const v = await verifyLicense(await sign(k1, c), opts());
    expect(v.decision).toBe('full');
    expect(v.validUntil).toBeNull();
    expect(v.limits).toEqual({ api_calls: null });
  });

  test('when the key was rotated, then a license signed with the second listed key verifies, and with a key no longer listed it is refused', async () => {
    const token = await sign(k2, claims());
    await expect(verifyLicense(token, opts({ trustedKeys: jwksOf(k1, k2) }))).resolves.toMatchObject({ kid: 'k2', decision: 'full' });
    const old = await sign(k1, claims());
    await expectRefused(old, opts({ trustedKeys: jwksOf(k2) }), 'UNKNOWN_KEY');
  });
});

describe('verifyLicense: time', () => {
  test('when the license is past its exp, then EXPIRED; within the tolerance it still verifies', async () => {
    const c = claims({ iat: T0 - 8 * 86400, exp: T0 - 86400 });
    await expectRefused(await sign(k1, c), opts(), 'EXPIRED');
    const justNow = claims({ iat: T0 - 86400, exp: T0 - 30 });
    await expect(verifyLicense(await sign(k1, justNow), opts())).resolves.toMatchObject({ decision: 'full' });
    await expectRefused(await sign(k1, justNow), opts({ clockToleranceSeconds: 10 }), 'EXPIRED');
  });

  test('when acceptExpired is set, then a lapsed license answers expired, by the license, not an error', async () => {
    const c = claims({ iat: T0 - 8 * 86400, exp: T0 - 86400 });
    const v = await verifyLicense(await sign(k1, c), opts({ acceptExpired: true }));
    expect(v).toMatchObject({ decision: 'expired', expiredBy: 'license' });
  });

  test('when nbf (or iat) is ahead of this clock beyond the tolerance, then NOT_YET_VALID', async () => {
    await expectRefused(await sign(k1, claims({ iat: T0, nbf: T0 + 3600 })), opts(), 'NOT_YET_VALID');
    await expectRefused(await sign(k1, claims({ iat: T0 + 3600 })), opts(), 'NOT_YET_VALID');
    await expect(verifyLicense(await sign(k1, claims({ iat: T0 + 30 })), opts())).resolves.toBeDefined();
  });
});

describe('verifyLicense: hostile tokens', () => {
  test('when the payload is changed after signing, then BAD_SIGNATURE', async () => {
    const token = await sign(k1, claims({ status: 'expired' }));
    const forged = withPayload(token, claims({ status: 'active', entitlements: { features: ['sso', 'audit'], limits: {} } }));
    await expectRefused(forged, opts(), 'BAD_SIGNATURE');
  });

  test('when a key the JWKS does not hold signs under a listed kid, then BAD_SIGNATURE; under its own kid, UNKNOWN_KEY', async () => {
    await expectRefused(await sign(outsider, claims(), { kid: 'k1' }), opts(), 'BAD_SIGNATURE');
    await expectRefused(await sign(outsider, claims()), opts(), 'UNKNOWN_KEY');
  });

  test('when the header says alg none, then ALGORITHM_NOT_ALLOWED, with or without a signature', async () => {
    const payload = claims();
    await expectRefused(handToken({ alg: 'none', kid: 'k1', typ: 'license+jwt' }, payload), opts(), 'ALGORITHM_NOT_ALLOWED');
    await expectRefused(handToken({ alg: 'none', kid: 'k1' }, payload, 'c2lnbmF0dXJl'), opts(), 'ALGORITHM_NOT_ALLOWED');
    await expectRefused(new UnsecuredJWT(payload).encode(), opts(), 'ALGORITHM_NOT_ALLOWED');
  });

  test('when HS256 is signed with the public key (its JWK, its PEM) as the secret, then ALGORITHM_NOT_ALLOWED', async () => {
    const header = { alg: 'HS256', kid: 'k1', typ: 'license+jwt' };
    const pem = await exportSPKI(k1.publicKey);
    const der = createPublicKey(pem).export({ type: 'spki', format: 'der' });
    for (const secret of [JSON.stringify(k1.jwk), pem, der, Buffer.from(k1.jwk.x as string, 'base64url')]) {
      await expectRefused(hs256Token(header, claims(), secret), opts(), 'ALGORITHM_NOT_ALLOWED');
    }
    // Even a JWKS that also lists a symmetric key under that kid gives HS256 nothing to verify with.
    const oct: JWK = { kty: 'oct', kid: 'k1', k: Buffer.from(pem).toString('base64url'), alg: 'HS256' };
    await expectRefused(hs256Token(header, claims(), pem), opts({ trustedKeys: { keys: [oct, k1.jwk] } }), 'ALGORITHM_NOT_ALLOWED');
  });

  test('when the header names any other algorithm (RS256, ES256, a different spelling), then ALGORITHM_NOT_ALLOWED', async () => {
    for (const alg of ['RS256', 'ES256', 'PS256', 'eddsa', 'Ed25519', '']) {
      await expectRefused(handToken({ alg, kid: 'k1' }, claims(), 'c2ln'), opts(), 'ALGORITHM_NOT_ALLOWED');
    }
    await expectRefused(handToken({ kid: 'k1' }, claims(), 'c2ln'), opts(), 'ALGORITHM_NOT_ALLOWED');
  });

  test('when the kid is unknown, then UNKNOWN_KEY; when it is missing, then MALFORMED', async () => {
    await expectRefused(await sign(k1, claims(), { kid: 'nope' }), opts(), 'UNKNOWN_KEY');
    await expectRefused(handToken({ alg: 'EdDSA', typ: 'license+jwt' }, claims(), 'c2ln'), opts(), 'MALFORMED');
  });

  test('when the token is not a compact JWS, or not a license, then MALFORMED', async () => {
    const good = await sign(k1, claims());
    const [h, p, s] = good.split('.') as [string, string, string];
    for (const bad of [
      '',
      'abc',
      `${h}.${p}`,
      `${h}.${p}.${s}.x`,
      `${h}.${p}.s+g=`,
      `.${p}.${s}`,
      `${h}..${s}`,
      `${b64('not json')}.${p}.${s}`,
      `${b64('[1]')}.${p}.${s}`,
      'x'.repeat(70_000),
    ]) {
      await expectRefused(bad, opts(), 'MALFORMED');
    }
    await expect(verifyLicense(42 as unknown as string, opts())).rejects.toMatchObject({ code: 'MALFORMED' });
    await expectRefused(await sign(k1, claims(), { typ: 'JWT' }), opts(), 'MALFORMED');
    await expectRefused(signRaw(k1, { alg: 'EdDSA', kid: 'k1', crit: ['exp'], exp: 1 }, claims()), opts(), 'MALFORMED');
    await expect(verifyLicense(signRaw(k1, { alg: 'EdDSA', kid: 'k1' }, claims()), opts())).resolves.toBeDefined(); // no typ is fine
  });

  test('when a validly signed payload is not in the license format, then MALFORMED', async () => {
    const { status: _s, ...noStatus } = claims();
    await expectRefused(await sign(k1, noStatus), opts(), 'MALFORMED');
    await expectRefused(await sign(k1, { ...claims(), status: 'platinum' }), opts(), 'MALFORMED');
    await expectRefused(await sign(k1, { ...claims(), entitlements: { features: 'sso', limits: {} } }), opts(), 'MALFORMED');
    await expectRefused(await sign(k1, { ...claims(), iat: '1764324000' }), opts(), 'MALFORMED');
  });
});

function b64(s: string): string {
  return Buffer.from(s).toString('base64url');
}

describe('verifyLicense: whose license', () => {
  test('when the issuer or the customer differs, then WRONG_ISSUER or WRONG_CUSTOMER', async () => {
    await expectRefused(await sign(k1, claims({ iss: 'someone-else' })), opts(), 'WRONG_ISSUER');
    await expectRefused(await sign(k1, claims({ sub: 'another-customer' })), opts(), 'WRONG_CUSTOMER');
  });

  test('when the license is bound to another fingerprint, then WRONG_INSTANCE', async () => {
    await expectRefused(await sign(k1, claims({ instance: 'fp-other' })), opts({ fingerprint: 'fp-mine' }), 'WRONG_INSTANCE');
  });

  test('when the license is bound to none, then it verifies, unless requireBinding', async () => {
    const unbound = await sign(k1, claims());
    await expect(verifyLicense(unbound, opts({ fingerprint: 'fp-mine' }))).resolves.toBeDefined();
    await expectRefused(unbound, opts({ fingerprint: 'fp-mine', requireBinding: true }), 'WRONG_INSTANCE');
  });

  test('when the plan limits instances, then an unbound license is refused whatever the options; bound, it verifies (control)', async () => {
    const limited = { features: ['sso'], limits: { api_calls: 100000, instances: 3 } };
    const unbound = await sign(k1, claims({ entitlements: limited }));
    await expectRefused(unbound, opts(), 'WRONG_INSTANCE');
    await expectRefused(unbound, opts({ fingerprint: 'fp-mine', requireBinding: false }), 'WRONG_INSTANCE');
    await expect(
      verifyLicense(await sign(k1, claims({ entitlements: limited, instance: 'fp-mine' })), opts({ fingerprint: 'fp-mine' })),
    ).resolves.toMatchObject({
      decision: 'full',
    });
  });

  test('when the options cannot work, then a TypeError (a bug of the caller), not a LicenseError', async () => {
    const token = await sign(k1, claims());
    await expect(verifyLicense(token, opts({ requireBinding: true }))).rejects.toThrow(TypeError);
    await expect(verifyLicense(token, opts({ now: NaN }))).rejects.toThrow(TypeError);
    // The old ways of giving keys (a fetched or carried JWKS) are refused outright, not ignored.
    for (const legacy of [{ jwksUrl: 'https://billing.example.com/jwks' }, { jwks: jwksOf(k1) }]) {
      await expect(verifyLicense(token, { ...opts(), ...legacy })).rejects.toThrow(/no longer accepted/);
    }
    await expect(verifyLicense(token, opts({ trustedKeys: jwksOf(k1), keySetUrl: 'https://billing.example.com/.well-known/license-keys' }))).rejects.toThrow(
      TypeError,
    );
    await expect(verifyLicense(token, opts({ clockToleranceSeconds: -1 }))).rejects.toThrow(TypeError);
  });
});

describe('verifyLicense: the monotonic mark', () => {
  test('when an older license comes after a newer one, then REPLAYED; the newest again is fine', async () => {
    const store = memoryLicenseStore();
    const older = await sign(k1, claims({ iat: T0 - 3600 }));
    const newer = await sign(k1, claims({ iat: T0 - 60 }));
    await verifyLicense(older, opts({ store }));
    await verifyLicense(newer, opts({ store }));
    await expectRefused(older, opts({ store }), 'REPLAYED');
    await expect(verifyLicense(newer, opts({ store }))).resolves.toBeDefined();
    expect(await store.read()).toEqual({ iat: T0 - 60, jti: expect.any(String) as string });
  });

  test('when two licenses share an issue second, then both are accepted', async () => {
    const store = memoryLicenseStore();
    await verifyLicense(await sign(k1, claims()), opts({ store }));
    await expect(verifyLicense(await sign(k2, claims()), opts({ store }))).resolves.toBeDefined();
  });

  test('when the clock is wound back before the newest accepted license, then CLOCK_ROLLED_BACK', async () => {
    const store = memoryLicenseStore();
    const newest = await sign(k1, claims());
    await verifyLicense(newest, opts({ store }));
    // Two days back, an old license (long expired today) would look current.
    const back = NOW_MS - 2 * 86400 * 1000;
    const old = await sign(k1, claims({ iat: T0 - 3 * 86400, exp: T0 - 86400 }));
    await expectRefused(old, opts({ store, now: back }), 'CLOCK_ROLLED_BACK');
    await expectRefused(newest, opts({ store, now: back }), 'CLOCK_ROLLED_BACK');
    // Within the tolerance is not a rollback.
    await expect(verifyLicense(newest, opts({ store, now: NOW_MS - 30_000 }))).resolves.toBeDefined();
  });

  test('when the clock is wound back after the newest license has expired, then it never verifies again', async () => {
    const store = memoryLicenseStore();
    const newest = await sign(k1, claims()); // exp T0 + 7d
    await verifyLicense(newest, opts({ store }));
    // Seen expired (as the offline cache does it, and as a fresh verification does too).
    const after = NOW_MS + 8 * 86400 * 1000;
    await expect(verifyLicense(newest, opts({ store, now: after, acceptExpired: true }))).resolves.toMatchObject({ decision: 'expired' });
    expect(await store.read()).toMatchObject({ iat: T0, expired: T0 + 7 * 86400 });
    // Wound back into its validity: after its iat, before its exp. It used to say full here.
    for (const back of [NOW_MS + 86400 * 1000, NOW_MS + 7 * 86400 * 1000 - 5_000]) {
      await expectRefused(newest, opts({ store, now: back }), 'CLOCK_ROLLED_BACK');
      await expectRefused(newest, opts({ store, now: back, acceptExpired: true }), 'CLOCK_ROLLED_BACK');
    }
    // A strict verification that refuses the lapsed license remembers the expiry just the same.
    const other = memoryLicenseStore();
    await expectRefused(newest, opts({ store: other, now: after }), 'EXPIRED');
    await expectRefused(newest, opts({ store: other, now: NOW_MS + 86400 * 1000 }), 'CLOCK_ROLLED_BACK');
    // Control: the clock at or after that exp is fine for a newer license.
    await expect(verifyLicense(await sign(k1, claims({ iat: T0 + 7 * 86400 })), opts({ store, now: after }))).resolves.toMatchObject({ decision: 'full' });
  });

  test('when no license was accepted yet, then an early clock is only checked against the license itself', async () => {
    const old = await sign(k1, claims({ iat: T0 - 3 * 86400, exp: T0 - 86400 }));
    await expect(verifyLicense(old, opts({ now: NOW_MS - 2 * 86400 * 1000 }))).resolves.toBeDefined();
  });

  test('when a license is refused, then the mark does not move', async () => {
    const store = memoryLicenseStore({ iat: T0 - 3600, jti: 'first' });
    await expectRefused(await sign(k1, claims({ instance: 'fp-other' })), opts({ store, fingerprint: 'fp-mine' }), 'WRONG_INSTANCE');
    await expectRefused(withPayload(await sign(k1, claims()), claims({ iat: T0 })), opts({ store }), 'BAD_SIGNATURE');
    expect(await store.read()).toEqual({ iat: T0 - 3600, jti: 'first' });
  });

  test('when the store cannot be read, then its error comes through and nothing is accepted', async () => {
    const broken: LicenseStore = {
      read: () => Promise.reject(new LicenseError('STORE_CORRUPT', 'corrupt')),
      advance: () => Promise.reject(new Error('not reached')),
    };
    await expectRefused(await sign(k1, claims()), opts({ store: broken }), 'STORE_CORRUPT');
  });
});

describe('verifyLicense: the trust anchor', () => {
  let server: http.Server;
  let served: unknown;
  let requests = 0;
  let url: string;
  let root: TestKey;
  let otherRoot: TestKey;

  beforeAll(async () => {
    [root, otherRoot] = await Promise.all([makeKey('root-1'), makeKey('root-1')]); // the attacker's root even copies the kid
    server = http.createServer((req, res) => {
      requests += 1;
      if (req.url !== '/.well-known/license-keys') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(served));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/license-keys`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
  beforeEach(async () => {
    served = { key_set: await signKeySet(root, [k1]) };
  });

  /** A new instance holding only the root, fetching the key set from `url`. */
  const rooted = () => opts({ keys: trustAnchor({ trustedRoots: jwksOf(root), keySetUrl: url, issuer: ISSUER, now: () => NOW_MS }) });

  test('when no key and no root is given, then NO_TRUST_ANCHOR, and nothing is fetched from anywhere', async () => {
    const before = requests;
    await expectRefused(await sign(k1, claims()), opts({ trustedKeys: undefined }), 'NO_TRUST_ANCHOR');
    await expectRefused(await sign(k1, claims()), opts({ trustedKeys: { keys: [] } }), 'NO_TRUST_ANCHOR');
    // A private key is not a trust anchor either (a public key is what the software ships).
    await expectRefused(await sign(k1, claims()), opts({ trustedKeys: { keys: [{ ...k1.jwk, d: 'AAAA' }] } }), 'NO_TRUST_ANCHOR');
    expect(requests).toBe(before);
  });

  test('when the key set is signed by the root, then its keys verify; a rotated-in key costs one refetch, no more within the cooldown', async () => {
    const before = requests;
    const source = trustAnchor({ trustedRoots: jwksOf(root), keySetUrl: url, issuer: ISSUER, now: () => NOW_MS });
    await Promise.all([verifyLicense(await sign(k1, claims()), opts({ keys: source })), verifyLicense(await sign(k1, claims()), opts({ keys: source }))]);
    expect(requests - before).toBe(1);
    expect(source.keySetIssuedAt).toBe(T0);

    served = { key_set: await signKeySet(root, [k1, k2], { iat: T0 + 10 }) }; // rotation: k2 added, signed by the root
    await expect(verifyLicense(await sign(k2, claims()), opts({ keys: source }))).resolves.toMatchObject({ kid: 'k2' });
    expect(requests - before).toBe(2);
    await expectRefused(await sign(outsider, claims()), opts({ keys: source }), 'UNKNOWN_KEY');
    await expectRefused(await sign(outsider, claims(), { kid: 'made-up' }), opts({ keys: source }), 'UNKNOWN_KEY');
    expect(requests - before).toBe(2);
  });

  test('when a lookup arrives while the first key set is being checked, then it joins that fetch and the next rotated-in key is still fetched', async () => {
    // The window CI once hit under load: the first fetch has answered but its key set is not yet
    // verified and held. A lookup made then must not spend the unknown-kid cooldown.
    const before = requests;
    let answeredFetch = false;
    let second: Promise<unknown> | null = null;
    const k1Token = await sign(k1, claims());
    const now = () => {
      if (answeredFetch && !second) second = verifyLicense(k1Token, opts({ keys: source }));
      return NOW_MS;
    };
    const source = trustAnchor({
      trustedRoots: jwksOf(root),
      keySetUrl: url,
      issuer: ISSUER,
      now,
      fetch: async (...args: Parameters<typeof fetch>) => {
        const res = await fetch(...args);
        answeredFetch = true;
        return res;
      },
    });
    await expect(verifyLicense(k1Token, opts({ keys: source }))).resolves.toMatchObject({ kid: 'k1' });
    expect(second).not.toBeNull(); // the second lookup did start inside the window
    await expect(second).resolves.toMatchObject({ kid: 'k1' });
    expect(requests - before).toBe(1);

    served = { key_set: await signKeySet(root, [k1, k2], { iat: T0 + 10 }) };
    await expect(verifyLicense(await sign(k2, claims()), opts({ keys: source }))).resolves.toMatchObject({ kid: 'k2' });
    expect(requests - before).toBe(2);
  });

  test('when the key set is signed by anything but the root, then it is refused (UNTRUSTED_KEY_SET) and none of its keys verify', async () => {
    const forged = await sign(outsider, claims());
    for (const bad of [
      await signKeySet(otherRoot, [outsider]), // another root under the same kid
      await signKeySet(outsider, [outsider]), // the signing key itself
      await signKeySet(root, [outsider], { header: { typ: 'JWT' } }), // not a key set's typ
      await signKeySet(root, [outsider], { exp: T0 - 3600 }), // expired
      await signKeySet(root, [outsider], { iat: T0 + 3600 }), // from the future
      await signKeySet(root, [outsider], { iss: 'someone-else' }),
      forged, // a license is not a key set
    ]) {
      served = { key_set: bad };
      await expectRefused(forged, rooted(), 'UNTRUSTED_KEY_SET');
    }
    // A plain JWKS, as an attacker's own server would serve it, is no key set at all.
    served = jwksOf(outsider);
    await expectRefused(forged, rooted(), 'UNTRUSTED_KEY_SET');
    served = { key_set: JSON.stringify(jwksOf(outsider)) };
    await expectRefused(forged, rooted(), 'UNTRUSTED_KEY_SET');
    // Control: the root's own key set, listing that key, is used.
    served = { key_set: await signKeySet(root, [outsider]) };
    await expect(verifyLicense(forged, rooted())).resolves.toMatchObject({ kid: 'outsider' });
  });

  test('when the root itself signs a license, or a key set is given as a license, then they are refused', async () => {
    await expectRefused(await sign(root, claims()), rooted(), 'UNKNOWN_KEY');
    await expectRefused(await signKeySet(root, [k1]), rooted(), 'MALFORMED');
  });

  test('when an older key set is served after a newer one, then the newer stays: a key rotated out does not come back', async () => {
    const source = trustAnchor({ trustedRoots: jwksOf(root), keySetUrl: url, now: () => NOW_MS, cooldownMs: 0 });
    served = { key_set: await signKeySet(root, [k2], { iat: T0 }) };
    await verifyLicense(await sign(k2, claims()), opts({ keys: source }));
    served = { key_set: await signKeySet(root, [k1], { iat: T0 - 86400 }) }; // the set from before k1 was rotated out
    await expectRefused(await sign(k1, claims()), opts({ keys: source }), 'UNKNOWN_KEY');
    expect(source.keySetIssuedAt).toBe(T0);
  });

  test('when a key set is carried in (keySet), then it counts only when the root signed it', async () => {
    const carried = await signKeySet(root, [k2]);
    await expect(verifyLicense(await sign(k2, claims()), opts({ trustedKeys: undefined, trustedRoots: jwksOf(root), keySet: carried }))).resolves.toMatchObject(
      {
        kid: 'k2',
      },
    );
    const forgedSet = await signKeySet(outsider, [outsider]);
    await expectRefused(await sign(outsider, claims()), opts({ trustedKeys: undefined, trustedRoots: jwksOf(root), keySet: forgedSet }), 'UNTRUSTED_KEY_SET');
  });

  test('when the cooldown has passed, then an unknown kid may refetch again', async () => {
    let clock = NOW_MS;
    const before = requests;
    const source = trustAnchor({ trustedRoots: jwksOf(root), keySetUrl: url, now: () => clock, cooldownMs: 60_000 });
    await expectRefused(await sign(outsider, claims()), opts({ keys: source }), 'UNKNOWN_KEY'); // the first fetch
    await expectRefused(await sign(outsider, claims()), opts({ keys: source }), 'UNKNOWN_KEY'); // one refetch
    await expectRefused(await sign(outsider, claims()), opts({ keys: source }), 'UNKNOWN_KEY'); // within the cooldown: none
    expect(requests - before).toBe(2);
    clock += 60_000;
    await expectRefused(await sign(outsider, claims()), opts({ keys: source }), 'UNKNOWN_KEY');
    expect(requests - before).toBe(3);
    expect(source.fetchCount).toBe(3);
  });

  test('when the key set cannot be fetched, then JWKS_UNAVAILABLE (transient), retried only after a pause; built-in keys still verify', async () => {
    let clock = NOW_MS;
    const missing = url.replace('/.well-known/license-keys', '/nothing');
    const source = trustAnchor({ trustedKeys: jwksOf(k1), trustedRoots: jwksOf(root), keySetUrl: missing, now: () => clock, retryAfterFailureMs: 10_000 });
    const err = await refusal(await sign(k2, claims()), opts({ keys: source }));
    expect(err.code).toBe('JWKS_UNAVAILABLE');
    expect(err.transient).toBe(true);
    await expectRefused(await sign(k2, claims()), opts({ keys: source }), 'JWKS_UNAVAILABLE');
    expect(source.fetchCount).toBe(1);
    clock += 10_000;
    await expectRefused(await sign(k2, claims()), opts({ keys: source }), 'JWKS_UNAVAILABLE');
    expect(source.fetchCount).toBe(2);
    await expect(verifyLicense(await sign(k1, claims()), opts({ keys: source }))).resolves.toMatchObject({ kid: 'k1' });
    expect(source.fetchCount).toBe(2);
  });

  test('when the keySetUrl is plain http to another host, then it is refused before any request', () => {
    expect(() => trustAnchor({ trustedRoots: jwksOf(root), keySetUrl: 'http://billing.example.com/.well-known/license-keys' })).toThrow(TypeError);
    expect(() => trustAnchor({ trustedRoots: jwksOf(root), keySetUrl: 'https://billing.example.com/.well-known/license-keys' })).not.toThrow();
  });
});

test('isLicenseError narrows on the code', async () => {
  const err = await refusal(await sign(k1, claims({ iss: 'x' })), opts());
  expect(isLicenseError(err)).toBe(true);
  expect(isLicenseError(err, 'WRONG_ISSUER')).toBe(true);
  expect(isLicenseError(err, 'REPLAYED')).toBe(false);
  expect(isLicenseError(new Error('x'))).toBe(false);
});
