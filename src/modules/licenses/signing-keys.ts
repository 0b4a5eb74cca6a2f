import { createHash, createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Ed25519 license signing keys. LICENSE_SIGNING_KEYS (or the file LICENSE_SIGNING_KEYS_FILE names)
 * holds one or more private keys, in one of these forms:
 *   - one JWK object: {"kty":"OKP","crv":"Ed25519","d":"…","x":"…","kid":"…"} (x and kid optional);
 *   - a JSON array of such objects;
 *   - one or more PEM blocks "-----BEGIN PRIVATE KEY-----" (PKCS#8, as `openssl genpkey -algorithm ed25519` writes).
 * The first key signs; every key is published. A key without a kid gets its RFC 7638 thumbprint.
 */
export interface PrivateSigningJwk {
  readonly kty: 'OKP';
  readonly crv: 'Ed25519';
  readonly d: string;
  readonly x: string;
  readonly kid: string;
}

export interface PublicSigningJwk {
  kty: 'OKP';
  crv: 'Ed25519';
  x: string;
  kid: string;
  alg: 'EdDSA';
  use: 'sig';
}

const KID_RE = /^[A-Za-z0-9._:-]{1,128}$/;
const PEM_RE = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----/g;

/**
 * RFC 7638: SHA-256 over the required members in lexicographic order, base64url. Written here because
 * jose's calculateJwkThumbprint is async and the settings are parsed synchronously at startup;
 * tests/unit/license-config.test.ts holds it to jose's answer.
 */
export function jwkThumbprint(x: string): string {
  return createHash('sha256')
    .update(JSON.stringify({ crv: 'Ed25519', kty: 'OKP', x }))
    .digest('base64url');
}

function fromKeyObject(key: KeyObject, kid?: string): PrivateSigningJwk {
  if (key.asymmetricKeyType !== 'ed25519') throw new Error('not an Ed25519 key');
  const jwk = key.export({ format: 'jwk' }) as { d: string; x: string };
  return Object.freeze({ kty: 'OKP', crv: 'Ed25519', d: jwk.d, x: jwk.x, kid: kid ?? jwkThumbprint(jwk.x) });
}

function fromJwk(value: unknown, where: string): PrivateSigningJwk {
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error(`${where} is not a JWK object`);
  const j = value as Record<string, unknown>;
  if (j.kty !== 'OKP' || j.crv !== 'Ed25519') throw new Error(`${where} is not an Ed25519 key (kty "OKP", crv "Ed25519")`);
  if (typeof j.d !== 'string') throw new Error(`${where} has no private part ("d"): give the private key, not the public one`);
  if (j.kid !== undefined && (typeof j.kid !== 'string' || !KID_RE.test(j.kid)))
    throw new Error(`${where}: "kid" must be 1-128 characters of A-Z a-z 0-9 . _ : -`);
  let key: KeyObject;
  try {
    key = fromSeed(j.d);
  } catch {
    throw new Error(`${where}: "d" is not a valid Ed25519 private key`);
  }
  const parsed = fromKeyObject(key, j.kid);
  // A copied-together key whose x is not d's would sign what nobody can verify.
  if (j.x !== undefined && j.x !== parsed.x) throw new Error(`${where}: "x" does not belong to "d"`);
  return parsed;
}

/** A private key from its 32-byte seed in base64url (a JWK's "d"). */
function fromSeed(d: string): KeyObject {
  const seed = Buffer.from(d, 'base64url');
  if (seed.length !== 32 || seed.toString('base64url') !== d) throw new Error('bad seed');
  // The fixed PKCS#8 prefix of an Ed25519 private key, then the seed.
  return createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]), format: 'der', type: 'pkcs8' });
}

/**
 * Parses the setting's text. Throws an Error whose message names the problem and never a key's
 * value (it goes to the startup message).
 */
export function parseSigningKeys(text: string): PrivateSigningJwk[] {
  const trimmed = text.trim();
  let keys: PrivateSigningJwk[];
  if (trimmed.startsWith('-----')) {
    const blocks = trimmed.match(PEM_RE) ?? [];
    if (blocks.length === 0) throw new Error('PEM text without a complete "-----BEGIN PRIVATE KEY-----" block');
    keys = blocks.map((pem, i) => {
      try {
        return fromKeyObject(createPrivateKey(pem));
      } catch {
        throw new Error(`PEM block ${i + 1} is not an Ed25519 private key (PKCS#8)`);
      }
    });
  } else {
    let value: unknown;
    try {
      value = JSON.parse(trimmed);
    } catch {
      throw new Error('must be a JWK object, a JSON array of JWKs, or PEM "PRIVATE KEY" blocks');
    }
    keys = Array.isArray(value) ? value.map((v, i) => fromJwk(v, `key ${i + 1}`)) : [fromJwk(value, 'the key')];
  }
  if (keys.length === 0) throw new Error('holds no key');
  const kids = keys.map((k) => k.kid);
  const repeated = kids.find((k, i) => kids.indexOf(k) !== i);
  if (repeated) throw new Error(`two keys share the kid "${repeated}"`);
  return keys;
}

export function generateSigningKey(): PrivateSigningJwk {
  return fromKeyObject(generateKeyPairSync('ed25519').privateKey);
}

export const publicJwk = (k: PrivateSigningJwk): PublicSigningJwk => ({ kty: 'OKP', crv: 'Ed25519', x: k.x, kid: k.kid, alg: 'EdDSA', use: 'sig' });

export const toKeyObject = (k: PrivateSigningJwk): KeyObject => fromSeed(k.d);

/**
 * Outside production, no LICENSE_SIGNING_KEYS means one key is generated once, kept in
 * DATA_DIR/license-signing-key.json (mode 0600) and reused on later starts, so licenses an
 * instance already holds keep verifying across restarts.
 */
export function loadOrCreateDevSigningKey(dataDir: string, name = 'license-signing-key.json'): { key: PrivateSigningJwk; file: string; created: boolean } {
  const file = path.resolve(dataDir, name);
  if (fs.existsSync(file)) return { key: parseSigningKeys(fs.readFileSync(file, 'utf8'))[0]!, file, created: false };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const key = generateSigningKey();
  // Written whole under another name, then linked in place: two starts at once never read half a key.
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(key)}\n`, { mode: 0o600 });
  try {
    fs.linkSync(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    fs.unlinkSync(tmp);
    return { key: parseSigningKeys(fs.readFileSync(file, 'utf8'))[0]!, file, created: false };
  }
  fs.unlinkSync(tmp);
  return { key, file, created: true };
}
