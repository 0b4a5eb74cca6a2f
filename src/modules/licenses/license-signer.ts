import { SignJWT, type JWTPayload } from 'jose';
import type { KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../../config';
import { signKeySet, type KeySet } from './key-set';
import { generateSigningKey, loadOrCreateDevSigningKey, publicJwk, toKeyObject, type PrivateSigningJwk, type PublicSigningJwk } from './signing-keys';

/** Where the published key set comes from: signed offline (configured), or by a root held here (development, tests). */
export interface KeySetSource {
  configured?: KeySet;
  root?: { key: PrivateSigningJwk; issuer: string };
}

const sec = (ms: number) => Math.floor(ms / 1000);

/**
 * The keys licenses are signed with: the first signs, every one is published in the JWKS, so an
 * instance holding a license signed by a key being rotated out still verifies it.
 */
export function createLicenseSigner(initial: readonly PrivateSigningJwk[], keySetSource: KeySetSource = {}) {
  let signing: { kid: string; key: KeyObject };
  let published: { keys: PublicSigningJwk[] };
  let keySet: string | null = null;
  const use = (keys: readonly PrivateSigningJwk[]) => {
    if (keys.length === 0) throw new Error('no license signing key');
    signing = { kid: keys[0]!.kid, key: toKeyObject(keys[0]!) };
    published = { keys: keys.map(publicJwk) };
    // A root held here (development, tests) signs the set again with the keys in use; a configured
    // set was signed offline, and the configuration refuses one that does not list the signing key.
    const { root } = keySetSource;
    keySet = keySetSource.configured?.token ?? (root ? signKeySet(root.key, published.keys, { issuer: root.issuer, iat: sec(Date.now()), days: 365 }) : null);
  };
  use(initial);

  return {
    /** A compact JWS: header {alg: EdDSA, kid, typ: license+jwt}. */
    sign(claims: JWTPayload): Promise<string> {
      return new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', kid: signing.kid, typ: 'license+jwt' }).sign(signing.key);
    },
    /**
     * Other claims signed by the same key under their own typ (a usage bundle's receipt:
     * usage-receipt+jwt), so a verifier never takes one for a license.
     */
    signTyped(claims: JWTPayload, typ: string): Promise<string> {
      return new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', kid: signing.kid, typ }).sign(signing.key);
    },
    jwks: () => published,
    /** The root-signed key set served at /.well-known/license-keys; null when none is configured. */
    keySet: () => keySet,
    /** The root's public key, when the root is held here (development, tests): what the software under test embeds. */
    rootJwks: () => (keySetSource.root ? { keys: [publicJwk(keySetSource.root.key)] } : null),
    kid: () => signing.kid,
    /** New keys (SIGHUP with LICENSE_SIGNING_KEYS_FILE); the next license is signed with the new first key. */
    replace: (keys: readonly PrivateSigningJwk[]) => use(keys),
  };
}

export type LicenseSigner = ReturnType<typeof createLicenseSigner>;

/**
 * The configured keys; without any (never in production: the configuration refuses it) a key of
 * development kept under DATA_DIR, or in tests a key held in memory for this process only.
 */
export function signingKeysFor(config: Config, logger: Logger): readonly PrivateSigningJwk[] {
  if (config.license.signingKeys.length > 0) return config.license.signingKeys;
  if (config.env === 'production') throw new Error('LICENSE_SIGNING_KEYS is required in production');
  if (config.env === 'test') return [generateSigningKey()];
  const dev = loadOrCreateDevSigningKey(config.dataDir);
  logger.info(
    { file: dev.file, kid: dev.key.kid },
    dev.created
      ? 'no LICENSE_SIGNING_KEYS set: generated a license signing key for development'
      : 'no LICENSE_SIGNING_KEYS set: using the development license signing key kept in this file',
  );
  return [dev.key];
}

/**
 * The key set to publish. Production: LICENSE_KEY_SET, signed offline, so the root's private key
 * never lives in the service (a service that can sign key sets can hand instances any key); without
 * it nothing is published there. Development: a root generated once and kept in
 * DATA_DIR/license-root-key.json (0600) signs it at start. Tests: a root held in memory.
 */
export function keySetSourceFor(config: Config, logger: Logger): KeySetSource {
  if (config.license.keySet) return { configured: config.license.keySet };
  if (config.env === 'production') return {};
  if (config.env === 'test') return { root: { key: generateSigningKey(), issuer: config.license.issuer } };
  const dev = loadOrCreateDevSigningKey(config.dataDir, 'license-root-key.json');
  logger.info(
    { file: dev.file, root: publicJwk(dev.key) },
    'no LICENSE_KEY_SET set: the license key set is signed by a development root kept in this file (embed its public key to test rotation)',
  );
  return { root: { key: dev.key, issuer: config.license.issuer } };
}
