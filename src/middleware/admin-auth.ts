import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { UnauthorizedError } from '../errors/app-error';
import type { AuditService } from '../modules/audit/audit-service';
import { contextOf } from './context';

const sha256 = (s: string) => createHash('sha256').update(s).digest();

export interface AdminTokenVerifier {
  /** The fingerprint of the matching token, or null. */
  match(presented: string): string | null;
}

/**
 * Compares in constant time: both sides are hashed to 32 bytes first, so neither the
 * length nor the content of a configured token leaks, and every token is compared.
 */
export function createAdminTokenVerifier(tokens: readonly string[]): AdminTokenVerifier {
  const known = tokens.map((t) => ({ digest: sha256(t), fingerprint: `admin:${sha256(t).toString('hex').slice(0, 12)}` }));
  return {
    match(presented) {
      const d = sha256(presented);
      let found: string | null = null;
      for (const k of known) if (timingSafeEqual(d, k.digest) && found === null) found = k.fingerprint;
      return found;
    },
  };
}

export function bearerToken(header: string | undefined): string | undefined {
  const m = header ? /^Bearer +([\x21-\x7e]+) *$/i.exec(header) : null;
  return m?.[1];
}

export function adminAuth(verifier: AdminTokenVerifier, audit: AuditService, onFailure?: (reason: string) => void): RequestHandler {
  return async (req, res, next) => {
    const token = bearerToken(req.get('authorization'));
    const fingerprint = token ? verifier.match(token) : null;
    if (!fingerprint) {
      onFailure?.(token ? 'invalid' : 'missing');
      await audit.recordDetached(
        { ...contextOf(req), actor: 'admin', actorId: null },
        { action: 'auth.admin_token', outcome: 'failure', details: { reason: token ? 'invalid' : 'missing' } },
      );
      res.setHeader('WWW-Authenticate', 'Bearer realm="billing-admin"');
      throw new UnauthorizedError();
    }
    res.locals.principal = { actorId: fingerprint };
    res.locals.actor = { actor: 'admin', actorId: fingerprint };
    next();
  };
}

/** Prometheus reads /metrics with METRICS_TOKEN (compared in constant time); an admin token works too. */
export function metricsAuth(metricsToken: string | undefined, admin: RequestHandler): RequestHandler {
  const verifier = metricsToken ? createAdminTokenVerifier([metricsToken]) : null;
  return (req, res, next) => {
    const token = bearerToken(req.get('authorization'));
    if (verifier && token && verifier.match(token)) {
      res.locals.principal = { actorId: 'metrics' };
      return next();
    }
    return admin(req, res, next);
  };
}
