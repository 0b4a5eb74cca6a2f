import { compactVerify, errors as joseErrors, importJWK, type JWK, type KeyLike } from 'jose';
import { fetchSameOrigin, readCapped } from './http';
import { LicenseError } from './license-errors';

export interface Jwks {
  keys: JWK[];
}

/** Finds the public keys a license's `kid` names. */
export interface JwksSource {
  /** The Ed25519 public keys listed under `kid` (usually one); empty when the kid is not known. */
  keysFor(kid: string): Promise<KeyLike[]>;
}

/** The header `typ` of a root-signed key set: never a license's, so neither can pass for the other. */
export const KEY_SET_TYP = 'license-keys+jwt';

/**
 * Only Ed25519 signing keys can verify a license: a key of another type listed under the same kid
 * (an `oct` secret, an RSA key) is ignored, so it can never be paired with another algorithm.
 */
function usable(jwk: JWK): boolean {
  return (
    jwk.kty === 'OKP' &&
    jwk.crv === 'Ed25519' &&
    typeof jwk.x === 'string' &&
    jwk.d === undefined &&
    (jwk.alg === undefined || jwk.alg === 'EdDSA') &&
    (jwk.use === undefined || jwk.use === 'sig')
  );
}

async function importSet(jwks: unknown, what: string): Promise<Map<string, KeyLike[]>> {
  if (typeof jwks !== 'object' || jwks === null || !Array.isArray((jwks as Jwks).keys)) {
    throw new TypeError(`${what} is not a JWKS (an object with a "keys" array)`);
  }
  const byKid = new Map<string, KeyLike[]>();
  for (const jwk of (jwks as Jwks).keys) {
    if (typeof jwk !== 'object' || jwk === null || typeof jwk.kid !== 'string' || !usable(jwk)) continue;
    let key: KeyLike;
    try {
      key = (await importJWK(jwk, 'EdDSA')) as KeyLike;
    } catch {
      continue;
    }
    byKid.set(jwk.kid, [...(byKid.get(jwk.kid) ?? []), key]);
  }
  return byKid;
}

/** A key set given in code (the keys built into the software): no fetch, nothing else trusted. */
export function staticJwks(jwks: Jwks): JwksSource {
  const imported = importSet(jwks, 'the key set');
  imported.catch(() => undefined);
  return { keysFor: async (kid) => (await imported).get(kid) ?? [] };
}

export interface TrustAnchorOptions {
  /** License public keys built into the software (a JWKS object). */
  trustedKeys?: Jwks;
  /** Root public keys built into the software: a key set signed by one of them adds license keys. */
  trustedRoots?: Jwks;
  /** A root-signed key set in hand (kept on disk, carried in to an air-gapped site): checked like a fetched one. */
  keySet?: string;
  /** Where the root-signed key set is fetched from (the service's /.well-known/license-keys); needs trustedRoots. */
  keySetUrl?: string;
  /** The key set's `iss` must be this, when given (the license issuer). */
  issuer?: string;
  /** Allowed clock difference for the key set's iat and exp. Default 60. */
  clockToleranceSeconds?: number;
  /** Least time between two fetches caused by an unknown kid (ms). Default 60 s. */
  cooldownMs?: number;
  /** Before a first fetch that answered, least time between two attempts (ms). Default 10 s. */
  retryAfterFailureMs?: number;
  /** Per fetch (ms). Default 5 s. */
  timeoutMs?: number;
  /** Allow keySetUrl over http:// to a host other than loopback (an older, still signed set could be replayed in transit). */
  allowInsecure?: boolean;
  /** Told of each key set accepted, to keep it (it is checked again when read back). */
  onKeySet?: (token: string) => unknown;
  now?: () => number;
  fetch?: typeof fetch;
}

export interface TrustAnchor extends JwksSource {
  /** How many key set fetches were started. */
  readonly fetchCount: number;
  /** The `iat` of the root-signed key set in use (seconds), or null. */
  readonly keySetIssuedAt: number | null;
}

const MAX_KEY_SET_BYTES = 256 * 1024;

function checkUrl(url: string, allowInsecure: boolean): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError('keySetUrl is not a URL');
  }
  const loopback = ['127.0.0.1', '[::1]', 'localhost'].includes(u.hostname);
  if (u.protocol === 'https:' || (u.protocol === 'http:' && (loopback || allowInsecure))) return u;
  throw new TypeError('keySetUrl must be https:// (http:// only to a loopback host, or with allowInsecure)');
}

const untrusted = (why: string) =>
  new LicenseError('UNTRUSTED_KEY_SET', `The license key set was refused: ${why}. Only a key set signed by a root built into this software is used.`);

interface AcceptedSet {
  iat: number;
  keys: Map<string, KeyLike[]>;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * Checks a root-signed key set: a compact JWS with typ license-keys+jwt, signed (EdDSA) by a root the
 * software holds, with {iss, iat, exp, keys}; not issued in the future, not expired. Throws
 * UNTRUSTED_KEY_SET otherwise.
 */
async function verifyKeySet(token: unknown, roots: Map<string, KeyLike[]>, o: { issuer?: string; nowSec: number; tolerance: number }): Promise<AcceptedSet> {
  if (typeof token !== 'string' || token.length > MAX_KEY_SET_BYTES) throw untrusted('it is not a compact JWS');
  const parts = token.trim().split('.');
  if (parts.length !== 3 || !parts.every((p) => /^[A-Za-z0-9_-]+$/.test(p))) throw untrusted('it is not a compact JWS');
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8'));
  } catch {
    throw untrusted('its header is not JSON');
  }
  if (!isObj(header) || header.alg !== 'EdDSA' || header.typ !== KEY_SET_TYP || typeof header.kid !== 'string' || header.crit !== undefined) {
    throw untrusted(`its header is not {alg: EdDSA, typ: ${KEY_SET_TYP}, kid}`);
  }
  const rootKeys = roots.get(header.kid) ?? [];
  if (rootKeys.length === 0) throw untrusted('it is signed by a key that is not a trusted root');
  let payload: Uint8Array | null = null;
  for (const key of rootKeys) {
    try {
      payload = (await compactVerify(parts.join('.'), key, { algorithms: ['EdDSA'] })).payload;
      break;
    } catch (err) {
      if (!(err instanceof joseErrors.JWSSignatureVerificationFailed)) throw untrusted('it is not a well-formed JWS');
    }
  }
  if (!payload) throw untrusted('its signature does not verify against the trusted root');
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch {
    throw untrusted('its payload is not JSON');
  }
  if (!isObj(body) || typeof body.iss !== 'string' || !isTime(body.iat) || !isTime(body.exp) || !Array.isArray(body.keys)) {
    throw untrusted('its payload is not {iss, iat, exp, keys}');
  }
  if (o.issuer !== undefined && body.iss !== o.issuer) throw untrusted('it comes from another issuer');
  if (body.iat > o.nowSec + o.tolerance) throw untrusted('it is issued in the future (or this clock is behind)');
  if (body.exp <= o.nowSec - o.tolerance) throw untrusted(`it expired at ${new Date(body.exp * 1000).toISOString()}`);
  return { iat: body.iat, keys: await importSet(body, 'the key set') };
}

/**
 * The keys a license may be signed with, and nothing else: the license keys built into the software,
 * and the keys of a key set signed by a root built into it. The key set may come from anywhere (the
 * service, a file, a USB stick): only the root's signature makes it count, so the address it was
 * fetched from, a response's `jwks_url` or a file beside the license never decide which keys are
 * trusted. Without trustedKeys or trustedRoots there is no anchor: NO_TRUST_ANCHOR.
 *
 * A kid no key in hand lists causes one fetch of the key set (a key rotated in), then no other such
 * fetch for a cooldown, so tokens with made-up kids cannot make the instance hammer the service. A
 * newer key set replaces the held one; an older one never does (a replayed set cannot bring back a
 * key rotated out).
 */
export function trustAnchor(options: TrustAnchorOptions): TrustAnchor {
  const { trustedKeys, trustedRoots } = options;
  if (!trustedKeys && !trustedRoots) {
    throw new LicenseError(
      'NO_TRUST_ANCHOR',
      'No trust anchor: give the license keys (trustedKeys) or the root key (trustedRoots) built into your software ' +
        '(npm run license-key -- public prints them). Keys are never taken from the service or from beside a license.',
    );
  }
  if (options.keySetUrl !== undefined && !trustedRoots) throw new TypeError('keySetUrl needs trustedRoots: a key set counts only when a root signed it');
  const target = options.keySetUrl !== undefined ? checkUrl(options.keySetUrl, options.allowInsecure ?? false) : null;
  const tolerance = options.clockToleranceSeconds ?? 60;
  const cooldownMs = options.cooldownMs ?? 60_000;
  const retryAfterFailureMs = options.retryAfterFailureMs ?? 10_000;
  const timeoutMs = options.timeoutMs ?? 5_000;
  const now = options.now ?? Date.now;
  const doFetch = options.fetch ?? fetch;

  const builtIn = trustedKeys ? importSet(trustedKeys, 'trustedKeys') : Promise.resolve(new Map<string, KeyLike[]>());
  const roots = trustedRoots ? importSet(trustedRoots, 'trustedRoots') : Promise.resolve(new Map<string, KeyLike[]>());
  builtIn.catch(() => undefined);
  roots.catch(() => undefined);

  let held: AcceptedSet | null = null;
  /** The outcome of the newest attempt at a key set, when it failed: answered while no fetch is allowed. */
  let lastProblem: LicenseError | null = null;
  let answered = false;
  let lastAttemptAt = -Infinity;
  let lastMissFetchAt = -Infinity;
  let inflight: Promise<void> | null = null;
  let fetchCount = 0;

  /** Uses a key set that verifies, unless an older one than held; `keep`: tell onKeySet (a set just fetched). */
  async function take(token: unknown, keep: boolean): Promise<void> {
    const set = await verifyKeySet(token, await roots, { issuer: options.issuer, nowSec: now() / 1000, tolerance });
    if (held && set.iat < held.iat) return;
    held = set;
    if (keep && typeof token === 'string') await options.onKeySet?.(token.trim());
  }

  const initial = (async () => {
    const [keys, rootKeys] = await Promise.all([builtIn, roots]);
    if (keys.size === 0 && rootKeys.size === 0) {
      throw new LicenseError('NO_TRUST_ANCHOR', 'No trust anchor: trustedKeys and trustedRoots hold no Ed25519 public key with a kid.');
    }
    if (options.keySet !== undefined && trustedRoots) {
      // A kept or carried key set that no longer verifies (expired, another root) is only not used.
      await take(options.keySet, false).catch((err: unknown) => {
        if (!(err instanceof LicenseError)) throw err;
        lastProblem = err;
      });
    }
  })();
  initial.catch(() => undefined);

  async function load(): Promise<void> {
    fetchCount += 1;
    lastAttemptAt = now();
    let body: unknown;
    try {
      // A redirect to another origin (another host, or off https) is refused: RedirectRefusedError.
      const res = await fetchSameOrigin(doFetch, target!, { method: 'GET', headers: { accept: 'application/json' }, signal: AbortSignal.timeout(timeoutMs) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      body = JSON.parse(await readCapped(res, MAX_KEY_SET_BYTES));
    } catch (err) {
      lastProblem = new LicenseError(
        'JWKS_UNAVAILABLE',
        `The license key set could not be fetched from ${target!.origin}${target!.pathname}: ${(err as Error).message}`,
        { cause: err },
      );
      return;
    }
    answered = true;
    try {
      await take(isObj(body) ? body.key_set : undefined, true);
      lastProblem = null;
    } catch (err) {
      if (!(err instanceof LicenseError)) throw err;
      lastProblem = err;
    }
  }

  function fetchAllowed(): boolean {
    if (!target) return false;
    const t = now();
    if (!answered) return t - lastAttemptAt >= retryAfterFailureMs;
    return t - lastMissFetchAt >= cooldownMs;
  }

  return {
    get fetchCount() {
      return fetchCount;
    },
    get keySetIssuedAt() {
      return held?.iat ?? null;
    },
    async keysFor(kid) {
      await initial;
      const own = (await builtIn).get(kid) ?? held?.keys.get(kid);
      if (own) return own;
      if (inflight) {
        // A fetch under way answers this miss too: joining it never spends the cooldown, or a lookup
        // made while the first fetch was being checked would block the next rotated-in key.
        await inflight;
        const fetched = held?.keys.get(kid);
        if (fetched) return fetched;
      } else if (fetchAllowed()) {
        if (answered) lastMissFetchAt = now();
        inflight = load().finally(() => (inflight = null));
        await inflight;
        const fetched = held?.keys.get(kid);
        if (fetched) return fetched;
      }
      if (lastProblem) throw lastProblem;
      return [];
    },
  };
}
