import { createHmac, randomUUID, sign as edSign, type KeyObject } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type KeyLike } from 'jose';
import type { LicenseClaims } from '../../packages/client';

/** Licenses signed the way the server signs them (the license format), and hostile tokens made by hand. */

export const T0 = 1764324000; // the test's "now", seconds
export const NOW_MS = T0 * 1000;
export const CUSTOMER = '6f1c2a0e-8d4b-4c3e-9a51-2b7d0f3e4a10';
export const ISSUER = 'billing-service';

export interface TestKey {
  kid: string;
  privateKey: KeyLike;
  publicKey: KeyLike;
  jwk: JWK;
}

export async function makeKey(kid: string): Promise<TestKey> {
  const { publicKey, privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'EdDSA', use: 'sig' };
  return { kid, privateKey, publicKey, jwk };
}

export function jwksOf(...keys: TestKey[]): { keys: JWK[] } {
  return { keys: keys.map((k) => k.jwk) };
}

/** A key set signed by `root` (the service's /.well-known/license-keys format), with any header or payload changes. */
export function signKeySet(
  root: TestKey,
  keys: TestKey[],
  o: { iat?: number; exp?: number; iss?: string; header?: Record<string, unknown> } = {},
): Promise<string> {
  const iat = o.iat ?? T0;
  return new SignJWT({ iss: o.iss ?? ISSUER, iat, exp: o.exp ?? iat + 365 * 86400, keys: keys.map((k) => k.jwk) })
    .setProtectedHeader({ alg: 'EdDSA', kid: root.kid, typ: 'license-keys+jwt', ...o.header })
    .sign(root.privateKey);
}

export function claims(overrides: Partial<LicenseClaims> = {}): LicenseClaims {
  const iat = overrides.iat ?? T0;
  return {
    iss: ISSUER,
    sub: CUSTOMER,
    jti: randomUUID(),
    iat,
    nbf: iat,
    exp: iat + 7 * 86400,
    plan: { code: 'pro', name: 'Pro' },
    entitlements: { features: ['sso'], limits: { api_calls: 100000 } },
    usage: { period_start: T0 - 86400, period_end: T0 + 30 * 86400, quantities: { api_calls: '1234.5' } },
    metered: {
      api_calls: {
        allowance: 100000,
        used: '1234.5',
        percent: 1.23,
        thresholds: [80, 100],
        thresholds_crossed: [],
        overage: 'block',
        blocks_at: '100000',
        state: 'ok',
      },
    },
    status: 'active',
    subscription: { id: randomUUID(), status: 'active', current_period_end: T0 + 30 * 86400, cancel_at_period_end: false },
    valid_until: T0 + 30 * 86400,
    grace_until: null,
    ...overrides,
  };
}

export function sign(key: TestKey, payload: object, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(payload as Record<string, unknown>).setProtectedHeader({ alg: 'EdDSA', kid: key.kid, typ: 'license+jwt', ...header }).sign(key.privateKey);
}

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** A token put together by hand: header and payload as base64url JSON, the signature as given. */
export function handToken(header: object, payload: object, signature = ''): string {
  return `${b64(header)}.${b64(payload)}.${signature}`;
}

/** An HS256 token whose HMAC secret is `secret` (the classic confusion: the public key used as a secret). */
export function hs256Token(header: object, payload: object, secret: string | Buffer): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** The same token with its payload swapped for another (the signature left as it was). */
export function withPayload(token: string, payload: object): string {
  const [h, , s] = token.split('.');
  return `${h}.${b64(payload)}.${s}`;
}

/** Any header, really signed with the key (for headers jose would refuse to produce). */
export function signRaw(key: TestKey, header: object, payload: object): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${edSign(null, Buffer.from(input), key.privateKey as KeyObject).toString('base64url')}`;
}
