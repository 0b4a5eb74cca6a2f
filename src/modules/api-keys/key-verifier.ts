import bcrypt from 'bcrypt';
import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { UnauthorizedError } from '../../errors/app-error';
import type { ActorContext } from '../../lib/request-context';
import type { AuditService } from '../audit/audit-service';
import type { ApiKeysRepository, KeyCandidate } from './api-keys-repository';
import { keyFingerprint, parseKey } from './key-format';
import type { LastUsedTracker } from './last-used-tracker';
import type { CacheEntry, CachedVerdict, VerificationCache } from './verification-cache';

export interface CustomerPrincipal {
  customerId: string;
  keyId: string;
}

export type FailureReason =
  | 'missing'
  | 'malformed'
  | 'unknown_key'
  | 'wrong_secret'
  | 'revoked'
  | 'expired'
  | 'customer_deleted';

export interface KeyVerifierDeps {
  db: Knex;
  repo: ApiKeysRepository;
  cache: VerificationCache;
  audit: AuditService;
  lastUsed: LastUsedTracker;
  bcryptCost: number;
  now?: () => number;
  /** Observes each bcrypt comparison (metrics, and tests that count them). */
  onBcrypt?: () => void;
  /** Observes each refusal (metrics). */
  onFailure?: (reason: FailureReason) => void;
}

/**
 * Checks a presented X-API-Key, always in the same order:
 * shape (no bcrypt, no database) -> cache (a stale positive verdict is re-checked by key id,
 * without bcrypt) -> one indexed lookup -> bcrypt -> key and customer state. Every failure is the same 401 to the caller; the reason goes to the audit log.
 * State checks run after bcrypt so unknown, wrong, revoked and expired keys take similar time.
 */
export function createKeyVerifier(deps: KeyVerifierDeps) {
  const { db, repo, cache, audit, lastUsed, bcryptCost } = deps;
  const now = deps.now ?? Date.now;
  const inFlight = new Map<string, Promise<CachedVerdict>>();
  const rechecks = new Map<string, Promise<CachedVerdict>>();
  let dummyHash: Promise<string> | null = null;

  const compare = (secret: string, hash: string) => {
    deps.onBcrypt?.();
    return bcrypt.compare(secret, hash);
  };

  /** Spends one bcrypt on a hash nobody holds, so "no such key" costs what "wrong secret" costs. */
  async function burnBcrypt(secret: string): Promise<void> {
    dummyHash ??= bcrypt.hash(randomBytes(32).toString('base64url'), bcryptCost);
    await compare(secret, await dummyHash);
  }

  function judge(c: Omit<KeyCandidate, 'secretHash'>): FailureReason | null {
    if (c.revokedAt) return 'revoked';
    if (c.expiresAt && c.expiresAt.getTime() <= now()) return 'expired';
    if (c.customerStatus !== 'active') return 'customer_deleted';
    return null;
  }

  /** A cached positive verdict past its TTL: one primary-key lookup, never bcrypt. */
  function recheck(fp: string, hit: CacheEntry): Promise<CachedVerdict> {
    let pending = rechecks.get(fp);
    if (!pending) {
      const generation = cache.generation;
      pending = repo
        .findState(db, hit.keyId!)
        .then((state): CachedVerdict => {
          const reason = state ? judge(state) : 'unknown_key';
          return reason
            ? { ok: false, customerId: hit.customerId, keyId: hit.keyId, keyExpiresAt: null, reason }
            : { ok: true, customerId: hit.customerId, keyId: hit.keyId, keyExpiresAt: state!.expiresAt?.getTime() ?? null };
        })
        .finally(() => rechecks.delete(fp));
      rechecks.set(fp, pending);
      pending.then((v) => cache.set(fp, v, generation), () => undefined);
    }
    return pending;
  }

  async function verifyUncached(customerId: string, secret: string, start: string): Promise<CachedVerdict> {
    const candidates = await repo.findCandidates(db, customerId, start);
    if (candidates.length === 0) {
      await burnBcrypt(secret);
      return { ok: false, customerId, keyId: null, keyExpiresAt: null, reason: 'unknown_key' };
    }
    for (const c of candidates) {
      if (!(await compare(secret, c.secretHash))) continue;
      const reason = judge(c);
      return { ok: reason === null, customerId, keyId: c.id, keyExpiresAt: c.expiresAt?.getTime() ?? null, ...(reason ? { reason } : {}) };
    }
    return { ok: false, customerId, keyId: null, keyExpiresAt: null, reason: 'wrong_secret' };
  }

  async function fail(ctx: ActorContext, reason: FailureReason, customerId: string | null, keyId: string | null, cached = false): Promise<never> {
    deps.onFailure?.(reason);
    await audit.recordDetached(
      { ...ctx, actor: 'customer', actorId: customerId },
      { action: 'auth.customer_key', outcome: 'failure', targetType: keyId ? 'api_key' : undefined, targetId: keyId, details: { reason, ...(cached ? { cached: true } : {}) } },
    );
    throw new UnauthorizedError();
  }

  return {
    async verify(presented: string | undefined, ctx: ActorContext): Promise<CustomerPrincipal> {
      if (!presented) return fail(ctx, 'missing', null, null);
      const parsed = parseKey(presented);
      if (!parsed) return fail(ctx, 'malformed', null, null);

      const fp = keyFingerprint(presented);
      let hit: CachedVerdict | undefined = cache.get(fp);
      if (hit?.ok && hit.keyExpiresAt !== null && hit.keyExpiresAt <= now()) {
        hit = { ...hit, ok: false, reason: 'expired' };
        cache.set(fp, hit);
      } else if (hit?.ok && now() >= (hit as CacheEntry).checkAfter) {
        hit = await recheck(fp, hit as CacheEntry);
      }
      if (hit) {
        if (!hit.ok) return fail(ctx, (hit.reason ?? 'wrong_secret') as FailureReason, hit.customerId, hit.keyId, true);
        lastUsed.touch(hit.keyId!, new Date(now()));
        return { customerId: hit.customerId, keyId: hit.keyId! };
      }

      // Concurrent first uses of one key share a single lookup and bcrypt.
      let pending = inFlight.get(fp);
      if (!pending) {
        const generation = cache.generation;
        pending = verifyUncached(parsed.customerId, parsed.secret, parsed.start).finally(() => inFlight.delete(fp));
        inFlight.set(fp, pending);
        pending.then((v) => cache.set(fp, v, generation), () => undefined);
        pending.then(
          async (v) => {
            if (!v.ok) return;
            await audit.recordDetached(
              { ...ctx, actor: 'customer', actorId: v.customerId },
              // One success row per key per instance per cache TTL: uses in between are cache hits.
              { action: 'auth.customer_key', outcome: 'success', targetType: 'api_key', targetId: v.keyId, details: { verified_by: 'bcrypt' } },
            );
          },
          () => undefined,
        );
      }
      const verdict = await pending;
      if (!verdict.ok) return fail(ctx, verdict.reason as FailureReason, verdict.customerId, verdict.keyId);
      lastUsed.touch(verdict.keyId!, new Date(now()));
      return { customerId: verdict.customerId, keyId: verdict.keyId! };
    },
  };
}

export type KeyVerifier = ReturnType<typeof createKeyVerifier>;
