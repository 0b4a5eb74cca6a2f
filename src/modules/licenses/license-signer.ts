import { SignJWT, type JWTPayload } from 'jose';
import type { KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../../config';
import { generateSigningKey, loadOrCreateDevSigningKey, publicJwk, toKeyObject, type PrivateSigningJwk, type PublicSigningJwk } from './signing-keys';

/**
 * The keys licenses are signed with: the first signs, every one is published in the JWKS, so an
 * instance holding a license signed by a key being rotated out still verifies it.
 */
export function createLicenseSigner(initial: readonly PrivateSigningJwk[]) {
  let signing: { kid: string; key: KeyObject };
  let published: { keys: PublicSigningJwk[] };
  const use = (keys: readonly PrivateSigningJwk[]) => {
    if (keys.length === 0) throw new Error('no license signing key');
    signing = { kid: keys[0]!.kid, key: toKeyObject(keys[0]!) };
    published = { keys: keys.map(publicJwk) };
  };
  use(initial);

  return {
    /** A compact JWS: header {alg: EdDSA, kid, typ: license+jwt}. */
    sign(claims: JWTPayload): Promise<string> {
      return new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', kid: signing.kid, typ: 'license+jwt' }).sign(signing.key);
    },
    jwks: () => published,
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
