import { compactVerify, errors as joseErrors, type KeyLike } from 'jose';
import { trustAnchor, type JwksSource, type TrustAnchorOptions } from './jwks-source';
import { parseLicenseClaims, type LicenseClaims, type MeteredClaim } from './license-claims';
import { LicenseError } from './license-errors';
import { clockWoundBack, type LicenseStore } from './license-store';

type AnchorKey = 'trustedKeys' | 'trustedRoots' | 'keySet' | 'keySetUrl';

/**
 * Offline verification of a license, in one fixed order: shape, algorithm, key (only keys built into
 * the software, or from a key set a built-in root signed), signature, payload format, time (this clock
 * against the mark, then nbf/iat), issuer, customer, instance, exp (a lapse is remembered), then the
 * monotonic mark (replay), which accepting the license advances. Each refusal is a LicenseError with its own
 * code; nothing from the token goes into a message.
 *
 * The trust anchor's options (trustedKeys and/or trustedRoots, without either NO_TRUST_ANCHOR; keySet,
 * keySetUrl) are trustAnchor's, documented there.
 */
export interface VerifyLicenseOptions extends Pick<TrustAnchorOptions, AnchorKey> {
  /** For keySetUrl and keySet: fetch pacing, timeout, clock. */
  keySetOptions?: Omit<TrustAnchorOptions, AnchorKey | 'issuer' | 'clockToleranceSeconds'>;
  /** Instead of the above: a trust anchor built once (trustAnchor(...)), shared by several verifiers. */
  keys?: JwksSource;
  /** Expected `iss`. */
  issuer?: string;
  /** Expected `sub` (this instance's customer id). */
  customerId?: string;
  /** This instance's fingerprint: a license bound to another instance is refused. */
  fingerprint?: string;
  /**
   * Refuse a license bound to no instance (needs fingerprint). A license whose plan limits instances
   * (`entitlements.limits.instances`) is refused unbound whatever this says: its seat is counted only
   * through the binding.
   */
  requireBinding?: boolean;
  /** Allowed clock difference for exp, nbf and the clock check. Default 60. */
  clockToleranceSeconds?: number;
  /** The clock, in ms (a value or a function). Default Date.now. */
  now?: number | (() => number);
  /** Where the newest accepted license is remembered: fileLicenseStore(path) in production. */
  store: LicenseStore;
  /**
   * Answer a license past its exp with decision `expired` (expiredBy `license`) instead of refusing
   * it with EXPIRED. For a license kept offline: the instance degrades rather than breaks.
   */
  acceptExpired?: boolean;
}

export type LicenseDecision = 'full' | 'grace' | 'expired';

export interface VerifiedLicense {
  claims: LicenseClaims;
  decision: LicenseDecision;
  /** Why the decision is `expired`: the server said so (`status`), or this license ran out (`license`). */
  expiredBy: 'status' | 'license' | null;
  kid: string;
  issuedAt: Date;
  expiresAt: Date;
  validUntil: Date | null;
  graceUntil: Date | null;
  features: readonly string[];
  /** null: unlimited. */
  limits: Readonly<Record<string, number | null>>;
  /**
   * Per metered limit, the signed figures as of issue: allowance, used, thresholds crossed, overage
   * policy and state (`ok`, `warn`, `over_tolerated`, `blocked`). What the instance does about each is
   * in docs/LICENSE-VERIFICATION.md; BillingClient's `license.allows()` adds what the instance has
   * reported since.
   */
  metered: Readonly<Record<string, MeteredClaim>>;
}

export const MAX_TOKEN_LENGTH = 64 * 1024;
const SEGMENT = /^[A-Za-z0-9_-]*$/;
const LICENSE_TYP = 'license+jwt';

/** One anchor per distinct set of anchor options within the process, so verifyLicense fetches a key set once. */
const anchors = new Map<string, JwksSource>();
const MAX_ANCHORS = 64;

function checkLegacy(options: object): void {
  for (const gone of ['jwks', 'jwksUrl', 'jwksOptions'] as const) {
    if ((options as Record<string, unknown>)[gone] !== undefined) {
      throw new TypeError(
        `${gone} is no longer accepted: a key set fetched or carried in without the root's signature proves nothing. ` +
          'Give trustedKeys (the public keys built into your software) or trustedRoots (and keySetUrl); see docs/LICENSE-VERIFICATION.md',
      );
    }
  }
}

/** The trust anchor the options describe (checked: no legacy key options). */
export function trustAnchorFor(options: Omit<VerifyLicenseOptions, 'store'>): JwksSource {
  checkLegacy(options);
  return trustAnchor(anchorOptions(options));
}

function anchorOptions(options: Omit<VerifyLicenseOptions, 'store'>): TrustAnchorOptions {
  const given = options.now;
  // The key set's iat and exp are judged by the same clock as the license.
  const now = typeof given === 'function' ? given : given !== undefined ? () => given : undefined;
  return {
    now,
    ...options.keySetOptions,
    trustedKeys: options.trustedKeys,
    trustedRoots: options.trustedRoots,
    keySet: options.keySet,
    keySetUrl: options.keySetUrl,
    issuer: options.issuer,
    clockToleranceSeconds: options.clockToleranceSeconds,
  };
}

function sourceOf(options: VerifyLicenseOptions): JwksSource {
  checkLegacy(options);
  if (options.keys) return options.keys;
  const id = JSON.stringify([
    options.trustedKeys,
    options.trustedRoots,
    options.keySet,
    options.keySetUrl,
    options.issuer,
    typeof options.now === 'number' ? options.now : null,
  ]);
  let s = anchors.get(id);
  if (!s) {
    s = trustAnchor(anchorOptions(options));
    if (anchors.size >= MAX_ANCHORS) anchors.delete(anchors.keys().next().value!);
    anchors.set(id, s);
  }
  return s;
}

function refuse(code: ConstructorParameters<typeof LicenseError>[0], message: string): never {
  throw new LicenseError(code, message);
}

function decodeHeader(token: unknown): Record<string, unknown> {
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) refuse('MALFORMED', 'The license is not a compact JWS.');
  const parts = token.split('.');
  // The signature may be empty here: an `alg: none` token is then refused for its algorithm.
  if (parts.length !== 3 || !parts.every((p) => SEGMENT.test(p)) || !parts[0] || !parts[1]) refuse('MALFORMED', 'The license is not a compact JWS.');
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
  } catch {
    refuse('MALFORMED', 'The license header is not JSON.');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) refuse('MALFORMED', 'The license header is not a JSON object.');
  return header as Record<string, unknown>;
}

async function verifySignature(token: string, keys: KeyLike[]): Promise<Uint8Array> {
  for (const key of keys) {
    try {
      // algorithms pins EdDSA inside jose too, whatever the header check above let through.
      return (await compactVerify(token, key, { algorithms: ['EdDSA'] })).payload;
    } catch (err) {
      if (err instanceof joseErrors.JWSSignatureVerificationFailed) continue;
      if (err instanceof joseErrors.JOSEAlgNotAllowed) refuse('ALGORITHM_NOT_ALLOWED', 'The license is not signed with EdDSA.');
      refuse('MALFORMED', 'The license is not a well-formed JWS.');
    }
  }
  refuse('BAD_SIGNATURE', 'The license signature does not verify.');
}

function date(seconds: number | null): Date | null {
  return seconds === null ? null : new Date(seconds * 1000);
}

export async function verifyLicense(token: string, options: VerifyLicenseOptions): Promise<VerifiedLicense> {
  const tolerance = options.clockToleranceSeconds ?? 60;
  if (!Number.isFinite(tolerance) || tolerance < 0) throw new TypeError('clockToleranceSeconds must be a number >= 0');
  if (options.requireBinding && options.fingerprint === undefined) throw new TypeError('requireBinding needs a fingerprint');
  const source = sourceOf(options);

  // 1. Shape and header.
  const header = decodeHeader(token);
  if (header.alg !== 'EdDSA') refuse('ALGORITHM_NOT_ALLOWED', 'The license is not signed with EdDSA.');
  if (header.typ !== undefined && (typeof header.typ !== 'string' || header.typ.toLowerCase().replace(/^application\//, '') !== LICENSE_TYP)) {
    refuse('MALFORMED', 'The token is not a license (typ).');
  }
  if (header.crit !== undefined || header.b64 !== undefined) refuse('MALFORMED', 'The license header has parameters a license never has.');
  if (typeof header.kid !== 'string' || header.kid.length === 0) refuse('MALFORMED', 'The license header names no key (kid).');
  const kid = header.kid;

  // 2. Key, then signature.
  const keys = await source.keysFor(kid);
  if (keys.length === 0) refuse('UNKNOWN_KEY', 'The license is signed with a key the key set does not list.');
  const payload = await verifySignature(token, keys);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch {
    refuse('MALFORMED', 'The license payload is not JSON.');
  }
  const claims = parseLicenseClaims(json);

  // 3. Time. This clock is checked against the mark first: wound back before the newest license
  // accepted, or before the end of a license it has seen expire, it would make an old license look
  // current (and the newest look not valid yet).
  const mark = await options.store.read();
  const nowMs = typeof options.now === 'function' ? options.now() : (options.now ?? Date.now());
  if (!Number.isFinite(nowMs)) throw new TypeError('now must give a time in ms');
  const now = nowMs / 1000;
  const woundBack = clockWoundBack(mark, now, tolerance);
  if (woundBack) refuse('CLOCK_ROLLED_BACK', woundBack);
  if (claims.nbf > now + tolerance || claims.iat > now + tolerance) refuse('NOT_YET_VALID', 'The license is not valid yet (or this clock is behind).');
  const lapsed = claims.exp <= now - tolerance;

  // 4. Whose license.
  if (options.issuer !== undefined && claims.iss !== options.issuer) refuse('WRONG_ISSUER', 'The license comes from another issuer.');
  if (options.customerId !== undefined && claims.sub !== options.customerId) refuse('WRONG_CUSTOMER', 'The license belongs to another customer.');
  if (claims.instance !== undefined) {
    if (options.fingerprint !== undefined && claims.instance !== options.fingerprint) refuse('WRONG_INSTANCE', 'The license is bound to another instance.');
  } else if (options.requireBinding) {
    refuse('WRONG_INSTANCE', 'The license is bound to no instance, and this instance requires one.');
  } else if (typeof claims.entitlements.limits.instances === 'number') {
    // A plan that counts instances counts them through the binding: unbound, one license could run any number of them.
    refuse('WRONG_INSTANCE', 'The license is bound to no instance, and its plan limits instances: it is valid only bound to an activated one.');
  }

  // 5. Expiry. A license of this instance's seen expired is remembered (its exp), so the clock can
  // never be wound back into its validity afterwards.
  if (lapsed) {
    await options.store.advance({ ...(mark ?? { iat: claims.iat, jti: claims.jti }), expired: claims.exp });
    if (!options.acceptExpired) refuse('EXPIRED', `The license expired at ${new Date(claims.exp * 1000).toISOString()}.`);
  }

  // 6. The monotonic mark: never an older license than the newest accepted. Accepting moves it.
  if (mark && claims.iat < mark.iat) refuse('REPLAYED', 'The license is older than one this instance has already accepted.');
  await options.store.advance({ iat: claims.iat, jti: claims.jti, ...(lapsed ? { expired: claims.exp } : {}) });

  const expiredBy = claims.status === 'expired' ? 'status' : lapsed ? 'license' : null;
  const decision: LicenseDecision = expiredBy ? 'expired' : claims.status === 'grace' ? 'grace' : 'full';
  return {
    claims,
    decision,
    expiredBy,
    kid,
    issuedAt: new Date(claims.iat * 1000),
    expiresAt: new Date(claims.exp * 1000),
    validUntil: date(claims.valid_until),
    graceUntil: date(claims.grace_until),
    features: claims.entitlements.features,
    limits: claims.entitlements.limits,
    metered: claims.metered,
  };
}

export interface LicenseVerifier {
  verify(token: string): Promise<VerifiedLicense>;
}

/** The options bound once, with a trust anchor of its own (not shared with the rest of the process): what the SDK holds. */
export function createLicenseVerifier(options: VerifyLicenseOptions): LicenseVerifier {
  const bound: VerifyLicenseOptions = { ...options, keys: options.keys ?? trustAnchorFor(options) };
  return { verify: (token) => verifyLicense(token, bound) };
}
