import { importJWK, type JWK, type KeyLike } from 'jose';
import { LicenseError } from './license-errors';

export interface Jwks {
  keys: JWK[];
}

/** Finds the public keys a license's `kid` names. */
export interface JwksSource {
  /** The Ed25519 public keys listed under `kid` (usually one); empty when the kid is not known. */
  keysFor(kid: string): Promise<KeyLike[]>;
}

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

async function importSet(jwks: unknown): Promise<Map<string, KeyLike[]>> {
  if (typeof jwks !== 'object' || jwks === null || !Array.isArray((jwks as Jwks).keys)) {
    throw new LicenseError('JWKS_UNAVAILABLE', 'The key set is not a JWKS (an object with a "keys" array).');
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

/** A key set given as an object (bundled with the instance, or read from a file). */
export function staticJwks(jwks: Jwks): JwksSource {
  const imported = importSet(jwks);
  imported.catch(() => undefined);
  return { keysFor: async (kid) => (await imported).get(kid) ?? [] };
}

export interface RemoteJwksOptions {
  /** Least time between two refetches caused by an unknown kid (ms). Default 60 s. */
  cooldownMs?: number;
  /** Before a first successful fetch, least time between two attempts (ms). Default 10 s. */
  retryAfterFailureMs?: number;
  /** Per fetch (ms). Default 5 s. */
  timeoutMs?: number;
  /** Allow http:// to a host other than loopback. Off: a key set fetched in clear could be swapped in transit. */
  allowInsecure?: boolean;
  now?: () => number;
  fetch?: typeof fetch;
}

export interface RemoteJwksSource extends JwksSource {
  /** How many fetches were started (for metrics and tests). */
  readonly fetchCount: number;
}

const MAX_JWKS_BYTES = 256 * 1024;

function checkUrl(url: string, allowInsecure: boolean): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError('jwksUrl is not a URL');
  }
  const loopback = ['127.0.0.1', '[::1]', 'localhost'].includes(u.hostname);
  if (u.protocol === 'https:' || (u.protocol === 'http:' && (loopback || allowInsecure))) return u;
  throw new TypeError('jwksUrl must be https:// (http:// only to a loopback host, or with allowInsecure)');
}

/**
 * A key set fetched from the server's /.well-known/jwks.json: fetched on first use and kept in
 * memory. A kid the kept set does not list causes one refetch (a key added by rotation), and then no
 * other such refetch for a cooldown, so a stream of tokens with made-up kids cannot make the instance
 * hammer the server. Concurrent callers share one fetch. Before a first success, a failed fetch is
 * retried at most once per retryAfterFailureMs; after one, a failed refetch keeps the set held.
 */
export function remoteJwks(url: string, options: RemoteJwksOptions = {}): RemoteJwksSource {
  const target = checkUrl(url, options.allowInsecure ?? false);
  const cooldownMs = options.cooldownMs ?? 60_000;
  const retryAfterFailureMs = options.retryAfterFailureMs ?? 10_000;
  const timeoutMs = options.timeoutMs ?? 5_000;
  const now = options.now ?? Date.now;
  const doFetch = options.fetch ?? fetch;
  let set: Map<string, KeyLike[]> | null = null;
  let inflight: Promise<Map<string, KeyLike[]>> | null = null;
  let lastAttemptAt = -Infinity;
  let lastMissRefetchAt = -Infinity;
  let lastFailure: LicenseError | null = null;
  let fetchCount = 0;

  async function load(): Promise<Map<string, KeyLike[]>> {
    fetchCount += 1;
    lastAttemptAt = now();
    let body: unknown;
    try {
      // No redirects: a redirect could take the request off https.
      const res = await doFetch(target, { headers: { accept: 'application/json' }, redirect: 'error', signal: AbortSignal.timeout(timeoutMs) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const text = await res.text();
      if (text.length > MAX_JWKS_BYTES) throw new Error('key set too large');
      body = JSON.parse(text);
    } catch (err) {
      throw new LicenseError('JWKS_UNAVAILABLE', `The license keys could not be fetched from ${target.origin}${target.pathname}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return importSet(body);
  }

  function refresh(): Promise<Map<string, KeyLike[]>> {
    inflight ??= load()
      .then(
        (s) => {
          lastFailure = null;
          return (set = s);
        },
        (err: LicenseError) => {
          lastFailure = err;
          throw err;
        },
      )
      .finally(() => (inflight = null));
    return inflight;
  }

  return {
    get fetchCount() {
      return fetchCount;
    },
    async keysFor(kid) {
      if (!set && !inflight && lastFailure && now() - lastAttemptAt < retryAfterFailureMs) {
        throw new LicenseError('JWKS_UNAVAILABLE', lastFailure.message, { cause: lastFailure.cause });
      }
      const current = set ?? (await refresh());
      const keys = current.get(kid);
      if (keys) return keys;
      if (inflight) return (await inflight).get(kid) ?? [];
      if (now() - lastMissRefetchAt < cooldownMs) return [];
      lastMissRefetchAt = now();
      // A failed refetch throws JWKS_UNAVAILABLE (the kid may be a new key not fetched yet) and keeps
      // the set already held for every other license.
      return (await refresh()).get(kid) ?? [];
    },
  };
}
