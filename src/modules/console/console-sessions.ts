import { createHash, randomBytes } from 'node:crypto';
import type { Request } from 'express';
import type { Knex } from 'knex';
import type { ConsoleSessionEnd, ConsoleSessionRow } from '../../db/tables';
import { AppError, UnauthorizedError } from '../../errors/app-error';
import type { ActorContext } from '../../lib/request-context';
import { addressName, type AuthFailureGuard } from '../../security/auth-failure-guard';
import type { AuditService } from '../audit/audit-service';

/**
 * Admin console sessions. An admin pastes a token once; it is exchanged for a random id in an
 * HttpOnly, SameSite=Strict cookie (Secure and `__Host-` in production), and the token itself never
 * reaches the browser's storage. The database keeps only the id's SHA-256, its token's fingerprint
 * and its times, so every instance sees a sign-in, a sign-out and a revocation at once.
 *
 * A session ends: after CONSOLE_SESSION_IDLE without a request, CONSOLE_SESSION_MAX after sign-in,
 * at sign-out, when its token leaves ADMIN_API_TOKEN (checked on every request), and when the same
 * browser signs in again (no id from before a sign-in is ever kept: no fixation).
 */

/** The cookie's name: `__Host-` binds it to this host, path / and Secure (the browser enforces all three). */
export const consoleCookieName = (secure: boolean) => (secure ? '__Host-billing_console' : 'billing_console');

/** 32 random bytes, base64url: what the cookie holds. Anything else in the cookie names nothing. */
const SESSION_ID_RE = /^[A-Za-z0-9_-]{43}$/;

const hashOf = (id: string) => createHash('sha256').update(id).digest();
/** A non-secret handle for audit rows and logs: the first 12 hex digits of the stored hash. */
const handleOf = (idHash: Buffer) => idHash.toString('hex').slice(0, 12);

/** The session id a request's cookie names, if it is well formed. */
export function sessionIdOf(req: Request, cookieName: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== cookieName) continue;
    const value = part.slice(eq + 1).trim();
    return SESSION_ID_RE.test(value) ? value : undefined;
  }
  return undefined;
}

/** Whether the request carries a cookie of that name at all (well formed or not). */
export const hasSessionCookie = (req: Request, cookieName: string) =>
  !!req.headers.cookie && req.headers.cookie.split(';').some((p) => p.slice(0, Math.max(0, p.indexOf('='))).trim() === cookieName);

/**
 * A request that carries the session cookie acts only if the browser says it comes from this
 * origin: `Sec-Fetch-Site: same-origin`, or an `Origin` equal to this service's own. Each header,
 * when present, must agree; at least one must be there. A page on another site can make a browser
 * send the cookie's request (SameSite stops most, not a sibling subdomain's), never these headers.
 */
export function sameOrigin(req: Request): boolean {
  const site = req.get('sec-fetch-site');
  const origin = req.get('origin');
  if (site === undefined && origin === undefined) return false;
  if (site !== undefined && site !== 'same-origin') return false;
  if (origin !== undefined && origin !== `${req.protocol}://${req.get('host') ?? ''}`) return false;
  return true;
}

export class CrossSiteError extends AppError {
  constructor() {
    super('FORBIDDEN', 'A console request must come from the console itself (a same-origin Origin or Sec-Fetch-Site header)');
  }
}

export interface ConsoleSession {
  idHash: Buffer;
  /** The admin token's fingerprint (`admin:<12 hex>`): the actor of everything done in the session. */
  actorId: string;
  createdAt: Date;
  lastSeenAt: Date;
  expiresAt: Date;
}

/** The admin tokens (src/middleware/admin-auth.ts): matched at sign-in, and asked after on every request. */
export interface SessionTokens {
  match(presented: string): string | null;
  knows(fingerprint: string): boolean;
}

export interface ConsoleSessionsDeps {
  db: Knex;
  audit: AuditService;
  tokens: SessionTokens;
  guard: AuthFailureGuard;
  idleMs: number;
  maxMs: number;
  secure: boolean;
  now: () => number;
  /** Hears each refused session or sign-in: the reason (metrics). */
  onFailure?: (reason: string) => void;
}

export function createConsoleSessions({ db, audit, tokens, guard, idleMs, maxMs, secure, now, onFailure }: ConsoleSessionsDeps) {
  const cookieName = consoleCookieName(secure);
  // last_seen_at is written at most this often per session: idle expiry is exact to within it.
  const touchEveryMs = Math.min(15_000, Math.floor(idleMs / 4));

  const cookie = (value: string, maxAgeSeconds: number) =>
    `${cookieName}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${secure ? '; Secure' : ''}`;

  const end = (idHash: Buffer, reason: ConsoleSessionEnd, at: Date) =>
    db('console_sessions').where({ id_hash: idHash }).whereNull('revoked_at').update({ revoked_at: at, revoked_reason: reason });

  const toSession = (r: ConsoleSessionRow): ConsoleSession => ({
    idHash: r.id_hash,
    actorId: r.token_fingerprint,
    createdAt: r.created_at,
    lastSeenAt: r.last_seen_at,
    expiresAt: r.expires_at,
  });

  /** A refusal of a session: counted against the address like any failed authentication. */
  async function refuse(req: Request, ctx: ActorContext, reason: string): Promise<never> {
    onFailure?.(reason);
    const refusal = await guard.fail([addressName(req.ip)]);
    if (refusal.code === 'UNAUTHORIZED') {
      await audit.recordDetached({ ...ctx, actor: 'admin', actorId: null }, { action: 'auth.console_session', outcome: 'failure', details: { reason } });
      throw new UnauthorizedError(reason === 'expired' ? 'The console session has ended; sign in again' : undefined);
    }
    throw refusal;
  }

  return {
    cookieName,
    idleMs,
    maxMs,
    /** Set-Cookie that clears the session cookie. */
    clearCookie: () => cookie('', 0),

    /**
     * Exchanges an admin token for a new session. A wrong token is a failed authentication (the
     * same limit as a wrong bearer token); a right one is never refused by that limit. A session
     * the browser already had is ended, whoever's it was.
     */
    async signIn(req: Request, token: string, ctx: ActorContext): Promise<{ session: ConsoleSession; setCookie: string }> {
      if (!sameOrigin(req)) throw new CrossSiteError();
      const fingerprint = tokens.match(token);
      const at = new Date(now());
      if (!fingerprint) {
        onFailure?.('invalid_token');
        const refusal = await guard.fail([addressName(req.ip)]);
        if (refusal.code === 'UNAUTHORIZED')
          await audit.recordDetached(
            { ...ctx, actor: 'admin', actorId: null },
            { action: 'console.sign_in', outcome: 'failure', details: { reason: 'invalid_token' } },
          );
        throw refusal;
      }
      const id = randomBytes(32).toString('base64url');
      const row: ConsoleSessionRow = {
        id_hash: hashOf(id),
        token_fingerprint: fingerprint,
        created_at: at,
        last_seen_at: at,
        expires_at: new Date(at.getTime() + maxMs),
        revoked_at: null,
        revoked_reason: null,
        ip: req.ip ?? null,
        user_agent: req.get('user-agent')?.slice(0, 300) ?? null,
      };
      const previous = sessionIdOf(req, cookieName);
      const actor = { ...ctx, actor: 'admin' as const, actorId: fingerprint };
      await db.transaction(async (trx) => {
        if (previous) {
          await trx('console_sessions')
            .where({ id_hash: hashOf(previous) })
            .whereNull('revoked_at')
            .update({ revoked_at: at, revoked_reason: 'replaced' });
        }
        // Rows whose session ended over a day ago are of no further use (the audit log keeps the story).
        await trx('console_sessions')
          .where('expires_at', '<', new Date(at.getTime() - 86_400_000))
          .delete();
        await trx('console_sessions').insert(row);
        await audit.record(trx, actor, {
          action: 'console.sign_in',
          outcome: 'success',
          targetType: 'console_session',
          details: { session: handleOf(row.id_hash), expires_at: row.expires_at.toISOString() },
        });
      });
      return { session: toSession(row), setCookie: cookie(id, Math.floor(maxMs / 1000)) };
    },

    /**
     * The session a request's cookie names, if it may act: same-origin, not ended, not idle too
     * long, not past its maximum, its token still configured. Anything else is refused (403 for a
     * cross-site request, else 401) and counted as a failed authentication.
     */
    async authenticate(req: Request, ctx: ActorContext): Promise<ConsoleSession> {
      if (!sameOrigin(req)) throw new CrossSiteError();
      const id = sessionIdOf(req, cookieName);
      if (!id) return refuse(req, ctx, 'malformed');
      const row = await db('console_sessions')
        .where({ id_hash: hashOf(id) })
        .first();
      if (!row) return refuse(req, ctx, 'unknown');
      if (row.revoked_at) return refuse(req, ctx, 'expired');
      const t = now();
      if (t >= row.expires_at.getTime() || t - row.last_seen_at.getTime() >= idleMs) {
        // Ended for good: an instance whose clock is behind must not take it back.
        await end(row.id_hash, 'expired', new Date(t));
        return refuse(req, ctx, 'expired');
      }
      if (!tokens.knows(row.token_fingerprint)) {
        await end(row.id_hash, 'token_removed', new Date(t));
        await audit.recordDetached(
          { ...ctx, actor: 'system', actorId: null },
          {
            action: 'console.session_revoked',
            outcome: 'success',
            targetType: 'console_session',
            details: { session: handleOf(row.id_hash), reason: 'token_removed', token: row.token_fingerprint },
          },
        );
        return refuse(req, ctx, 'expired');
      }
      if (t - row.last_seen_at.getTime() >= touchEveryMs) {
        // Never moves it back (two instances touching at once) and never revives an ended one.
        await db('console_sessions')
          .where({ id_hash: row.id_hash })
          .whereNull('revoked_at')
          .where('last_seen_at', '<', new Date(t))
          .update({ last_seen_at: new Date(t) });
        row.last_seen_at = new Date(t);
      }
      return toSession(row);
    },

    async signOut(session: ConsoleSession, ctx: ActorContext): Promise<void> {
      await db.transaction(async (trx) => {
        await trx('console_sessions')
          .where({ id_hash: session.idHash })
          .whereNull('revoked_at')
          .update({ revoked_at: new Date(now()), revoked_reason: 'sign_out' });
        await audit.record(trx, ctx, {
          action: 'console.sign_out',
          outcome: 'success',
          targetType: 'console_session',
          details: { session: handleOf(session.idHash) },
        });
      });
    },

    /** What the console shows of its session: never the id. */
    describe(s: ConsoleSession) {
      return {
        actor_id: s.actorId,
        created_at: s.createdAt.toISOString(),
        expires_at: s.expiresAt.toISOString(),
        idle_expires_at: new Date(Math.min(s.lastSeenAt.getTime() + idleMs, s.expiresAt.getTime())).toISOString(),
        idle_timeout_seconds: Math.floor(idleMs / 1000),
      };
    },
  };
}

export type ConsoleSessions = ReturnType<typeof createConsoleSessions>;
