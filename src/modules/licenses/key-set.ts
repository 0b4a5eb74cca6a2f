import { sign as edSign } from 'node:crypto';
import { publicJwk, toKeyObject, type PrivateSigningJwk, type PublicSigningJwk } from './signing-keys';

/**
 * The license key set, signed by a root key: how a new signing key reaches instances without new
 * software. The vendor's software holds the root's public key (its trust anchor); the service
 * publishes this compact JWS at /.well-known/license-keys, and an instance uses a key from it only
 * when the root's signature verifies.
 *
 * Header {alg: EdDSA, kid: <root kid>, typ: license-keys+jwt}; payload {iss, iat, exp, keys: [public JWKs]}.
 * Its own typ, so a key set can never pass for a license nor a license for a key set.
 */
export const KEY_SET_TYP = 'license-keys+jwt';

export interface KeySet {
  /** The compact JWS, as published. */
  token: string;
  /** The root key that signed it (as the header says: not verified here, instances verify). */
  rootKid: string;
  iss: string;
  iat: number;
  exp: number;
  keys: PublicSigningJwk[];
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

/** Signs a key set (synchronously: node:crypto's Ed25519). `days`: how long instances accept it. */
export function signKeySet(root: PrivateSigningJwk, keys: readonly PublicSigningJwk[], o: { issuer: string; iat: number; days: number }): string {
  const input = `${b64({ alg: 'EdDSA', kid: root.kid, typ: KEY_SET_TYP })}.${b64({ iss: o.issuer, iat: o.iat, exp: o.iat + o.days * 86_400, keys })}`;
  return `${input}.${edSign(null, Buffer.from(input), toKeyObject(root)).toString('base64url')}`;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * Reads a signed key set (LICENSE_KEY_SET) for the service's own checks: its shape, and which keys it
 * lists. The signature is the instances' to verify against the root they hold; the service need not
 * know the root at all. Throws an Error naming the problem.
 */
export function parseKeySet(text: string): KeySet {
  const token = text.trim();
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((p) => /^[A-Za-z0-9_-]+$/.test(p)))
    throw new Error('is not a compact JWS (make one: npm run license-key -- sign-key-set)');
  let header: unknown;
  let payload: unknown;
  try {
    header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8'));
    payload = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
  } catch {
    throw new Error('is not a compact JWS with a JSON header and payload');
  }
  if (!isObj(header) || header.alg !== 'EdDSA' || header.typ !== KEY_SET_TYP || typeof header.kid !== 'string') {
    throw new Error(`is not a signed license key set (header {alg: EdDSA, typ: ${KEY_SET_TYP}, kid})`);
  }
  if (!isObj(payload) || typeof payload.iss !== 'string' || !isTime(payload.iat) || !isTime(payload.exp) || !Array.isArray(payload.keys)) {
    throw new Error('is not a license key set (payload {iss, iat, exp, keys})');
  }
  const keys = publicKeysOf(payload.keys, 'key');
  return { token, rootKid: header.kid, iss: payload.iss, iat: payload.iat, exp: payload.exp, keys };
}

/** A list of public JWKs (a key set's, or `license-key public`'s): each an Ed25519 public key with a kid, never a private one. */
export function publicKeysOf(list: unknown[], what: string): PublicSigningJwk[] {
  return list.map((k, i): PublicSigningJwk => {
    if (!isObj(k) || k.kty !== 'OKP' || k.crv !== 'Ed25519' || typeof k.x !== 'string' || typeof k.kid !== 'string' || 'd' in k) {
      throw new Error(`${what} ${i + 1} is not an Ed25519 public key with a kid`);
    }
    return { kty: 'OKP', crv: 'Ed25519', x: k.x, kid: k.kid, alg: 'EdDSA', use: 'sig' };
  });
}

/** The signing keys a key set does not list (by kid and public key): instances relying on the set refuse their licenses. */
export function keysMissingFrom(set: Pick<KeySet, 'keys'>, signing: readonly PrivateSigningJwk[]): string[] {
  return signing
    .map(publicJwk)
    .filter((k) => !set.keys.some((l) => l.kid === k.kid && l.x === k.x))
    .map((k) => k.kid);
}
