import { createPublicKey } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportSPKI, UnsecuredJWT, type JWK } from 'jose';
import {
  isLicenseError,
  LicenseError,
  memoryLicenseStore,
  remoteJwks,
  verifyLicense,
  type LicenseErrorCode,
  type LicenseStore,
  type VerifyLicenseOptions,
} from '../../src/client';
import { claims, CUSTOMER, handToken, hs256Token, ISSUER, jwksOf, makeKey, NOW_MS, sign, signRaw, T0, withPayload, type TestKey } from './license-fixtures';

let k1: TestKey;
let k2: TestKey;
let outsider: TestKey;

beforeAll(async () => {
  [k1, k2, outsider] = await Promise.all([makeKey('k1'), makeKey('k2'), makeKey('outsider')]);
});

function opts(extra: Partial<VerifyLicenseOptions> = {}): VerifyLicenseOptions {
  return { jwks: jwksOf(k1, k2), issuer: ISSUER, customerId: CUSTOMER, now: NOW_MS, store: memoryLicenseStore(), ...extra };
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
    expect(v.limits).toEqual({ api_calls: 100000, instances: 3 });
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

  test('when the license has no subscription, usage, valid_until nor seats (default plan), then it verifies', async () => {
    const c = claims({ subscription: null, usage: null, valid_until: null, entitlements: { features: [], limits: { api_calls: null } } });
    const v = await verifyLicense(await sign(k1, c), opts());
    expect(v.decision).toBe('full');
    expect(v.validUntil).toBeNull();
    expect(v.limits).toEqual({ api_calls: null });
  });

  test('when the key was rotated, then a license signed with the second listed key verifies, and with a key no longer listed it is refused', async () => {
    const token = await sign(k2, claims());
    await expect(verifyLicense(token, opts({ jwks: jwksOf(k1, k2) }))).resolves.toMatchObject({ kid: 'k2', decision: 'full' });
    const old = await sign(k1, claims());
    await expectRefused(old, opts({ jwks: jwksOf(k2) }), 'UNKNOWN_KEY');
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
    await expectRefused(new UnsecuredJWT(payload as unknown as Record<string, unknown>).encode(), opts(), 'ALGORITHM_NOT_ALLOWED');
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
    await expectRefused(hs256Token(header, claims(), pem), opts({ jwks: { keys: [oct, k1.jwk] } }), 'ALGORITHM_NOT_ALLOWED');
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

  test('when the options cannot work, then a TypeError (a bug of the caller), not a LicenseError', async () => {
    const token = await sign(k1, claims());
    await expect(verifyLicense(token, opts({ requireBinding: true }))).rejects.toThrow(TypeError);
    await expect(verifyLicense(token, opts({ now: NaN }))).rejects.toThrow(TypeError);
    await expect(verifyLicense(token, opts({ jwksUrl: 'https://billing.example.com/jwks' }))).rejects.toThrow(TypeError);
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

describe('verifyLicense: keys from a jwksUrl', () => {
  let server: http.Server;
  let served: { keys: JWK[] };
  let requests = 0;
  let url: string;

  beforeAll(async () => {
    served = jwksOf(k1);
    server = http.createServer((req, res) => {
      requests += 1;
      if (req.url !== '/.well-known/jwks.json') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(served));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  test('when several licenses are verified, then the key set is fetched once; a new kid causes one refetch, and no more within the cooldown', async () => {
    const o = (extra: Partial<VerifyLicenseOptions> = {}) => opts({ jwks: undefined, jwksUrl: url, ...extra });
    await Promise.all([verifyLicense(await sign(k1, claims()), o()), verifyLicense(await sign(k1, claims()), o())]);
    await verifyLicense(await sign(k1, claims()), o());
    expect(requests).toBe(1);

    served = jwksOf(k1, k2); // the server rotates in k2
    await expect(verifyLicense(await sign(k2, claims()), o())).resolves.toMatchObject({ kid: 'k2' });
    expect(requests).toBe(2);
    await verifyLicense(await sign(k2, claims()), o());
    await expectRefused(await sign(outsider, claims()), o(), 'UNKNOWN_KEY');
    await expectRefused(await sign(outsider, claims(), { kid: 'made-up' }), o(), 'UNKNOWN_KEY');
    expect(requests).toBe(2);
  });

  test('when the cooldown has passed, then an unknown kid may refetch again', async () => {
    let clock = 0;
    const before = requests;
    const source = remoteJwks(url, { now: () => clock, cooldownMs: 60_000 });
    await expectRefused(await sign(outsider, claims()), opts({ jwks: source }), 'UNKNOWN_KEY'); // first fetch, then one refetch
    await expectRefused(await sign(outsider, claims()), opts({ jwks: source }), 'UNKNOWN_KEY');
    expect(requests - before).toBe(2);
    clock += 60_000;
    await expectRefused(await sign(outsider, claims()), opts({ jwks: source }), 'UNKNOWN_KEY');
    expect(requests - before).toBe(3);
    expect(source.fetchCount).toBe(3);
  });

  test('when the key set cannot be fetched, then JWKS_UNAVAILABLE, retried only after a pause', async () => {
    let clock = 0;
    const missing = url.replace('/.well-known/jwks.json', '/nothing');
    const source = remoteJwks(missing, { now: () => clock, retryAfterFailureMs: 10_000 });
    const err = await refusal(await sign(k1, claims()), opts({ jwks: source }));
    expect(err.code).toBe('JWKS_UNAVAILABLE');
    expect(err.transient).toBe(true);
    await expectRefused(await sign(k1, claims()), opts({ jwks: source }), 'JWKS_UNAVAILABLE');
    expect(source.fetchCount).toBe(1);
    clock += 10_000;
    await expectRefused(await sign(k1, claims()), opts({ jwks: source }), 'JWKS_UNAVAILABLE');
    expect(source.fetchCount).toBe(2);
  });

  test('when the jwksUrl is plain http to another host, then it is refused before any request', () => {
    expect(() => remoteJwks('http://billing.example.com/.well-known/jwks.json')).toThrow(TypeError);
    expect(() => remoteJwks('https://billing.example.com/.well-known/jwks.json')).not.toThrow();
  });
});

test('isLicenseError narrows on the code', async () => {
  const err = await refusal(await sign(k1, claims({ iss: 'x' })), opts());
  expect(isLicenseError(err)).toBe(true);
  expect(isLicenseError(err, 'WRONG_ISSUER')).toBe(true);
  expect(isLicenseError(err, 'REPLAYED')).toBe(false);
  expect(isLicenseError(new Error('x'))).toBe(false);
});
