import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { AuditService } from '../modules/audit/audit-service';
import { addressName, type AuthFailureGuard } from '../security/auth-failure-guard';
import { contextOf } from './context';
import { hasSessionCookie, type ConsoleSessions } from '../modules/console/console-sessions';

const sha256 = (s: string) => createHash('sha256').update(s).digest();

export interface AdminTokenVerifier {
  /** The fingerprint of the matching token, or null. */
  match(presented: string): string | null;
  /** Replaces the accepted tokens (a secret re-read on SIGHUP); requests after it see only these. */
  replace(tokens: readonly string[]): void;
  /** How many tokens are accepted. */
  readonly size: number;
  /** Whether a token with this fingerprint is still accepted (a console session's token, after a SIGHUP). */
  knows(fingerprint: string): boolean;
}

/**
 * Compares in constant time: both sides are hashed to 32 bytes first, so neither the
 * length nor the content of a configured token leaks, and every token is compared.
 * `label` prefixes the fingerprint that audit rows carry (`admin:<12 hex>`).
 */
export function createAdminTokenVerifier(tokens: readonly string[], label = 'admin'): AdminTokenVerifier {
  const digests = (list: readonly string[]) => list.map((t) => ({ digest: sha256(t), fingerprint: `${label}:${sha256(t).toString('hex').slice(0, 12)}` }));
  let known = digests(tokens);
  return {
    match(presented) {
      const d = sha256(presented);
      let found: string | null = null;
      for (const k of known) if (timingSafeEqual(d, k.digest) && found === null) found = k.fingerprint;
      return found;
    },
    replace(next) {
      known = digests(next);
    },
    get size() {
      return known.length;
    },
    knows(fingerprint) {
      return known.some((k) => k.fingerprint === fingerprint);
    },
  };
}

export function bearerToken(header: string | undefined): string | undefined {
  const m = header ? /^Bearer +([\x21-\x7e]+) *$/i.exec(header) : null;
  return m?.[1];
}

/**
 * A correct token is cheap to check (two SHA-256 and a constant-time compare), so it is checked
 * first and never refused by the failed-authentication limit: bad tokens from a shared address
 * cannot lock the admins there out. The admin limiter before this step has matched it already
 * (it counts a correct token by its fingerprint, not by address) and left the answer in
 * `res.locals.adminFingerprint`. A wrong or missing one is counted, then refused: 401, or 429
 * once the address is past the limit.
 */
export function adminAuth(
  verifier: AdminTokenVerifier,
  guard: AuthFailureGuard,
  audit: AuditService,
  onFailure?: (reason: string) => void,
  sessions?: ConsoleSessions | null,
): RequestHandler {
  const viaSession = sessions ? consoleAuth(sessions) : null;
  return async (req, res, next) => {
    const token = bearerToken(req.get('authorization'));
    // The console calls the admin routes with its session cookie instead of a token.
    if (!token && viaSession && hasSessionCookie(req, sessions!.cookieName)) return viaSession(req, res, next);
    const matched = res.locals.adminFingerprint as string | null | undefined;
    const fingerprint = matched !== undefined ? matched : token ? verifier.match(token) : null;
    if (!fingerprint) {
      const reason = token ? 'invalid' : 'missing';
      onFailure?.(reason);
      const refusal = await guard.fail([addressName(req.ip)]);
      // Past the limit, a 429 and no row (rate_limited_total counts them): a flood never becomes a flood of writes.
      if (refusal.code === 'UNAUTHORIZED') {
        await audit.recordDetached(
          { ...contextOf(req), actor: 'admin', actorId: null },
          { action: 'auth.admin_token', outcome: 'failure', details: { reason } },
        );
        res.setHeader('WWW-Authenticate', 'Bearer realm="billing-admin"');
      }
      throw refusal;
    }
    res.locals.principal = { actorId: fingerprint };
    res.locals.actor = { actor: 'admin', actorId: fingerprint };
    next();
  };
}

/**
 * A console session (src/modules/console): the cookie, from this origin. The session's token is the
 * actor, as if the admin had sent it.
 */
export function consoleAuth(sessions: ConsoleSessions): RequestHandler {
  return async (req, res, next) => {
    const session = await sessions.authenticate(req, contextOf(req));
    res.locals.principal = { actorId: session.actorId };
    res.locals.actor = { actor: 'admin', actorId: session.actorId };
    res.locals.consoleSession = session;
    next();
  };
}

/** Prometheus reads /metrics with METRICS_TOKEN (compared in constant time); an admin token works too. */
export function metricsAuth(metricsTokens: AdminTokenVerifier, admin: RequestHandler): RequestHandler {
  return (req, res, next) => {
    const token = bearerToken(req.get('authorization'));
    if (token && metricsTokens.match(token)) {
      res.locals.principal = { actorId: 'metrics' };
      return next();
    }
    return admin(req, res, next);
  };
}
