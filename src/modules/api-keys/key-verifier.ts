import bcrypt from 'bcrypt';
import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { AppError, ServiceUnavailableError, UnauthorizedError } from '../../errors/app-error';
import { addressName, customerName, keyName, type AuthFailureGuard, type Reservation } from '../../security/auth-failure-guard';
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

export type FailureReason = 'missing' | 'malformed' | 'unknown_key' | 'wrong_secret' | 'revoked' | 'expired' | 'customer_deleted' | 'rate_limited';

export interface VerifyOptions {
  /** True once the client has hung up: a bcrypt not yet started is then not run at all. */
  clientGone?: () => boolean;
}

export interface KeyVerifierDeps {
  db: Knex;
  repo: ApiKeysRepository;
  cache: VerificationCache;
  audit: AuditService;
  lastUsed: LastUsedTracker;
  bcryptCost: number;
  /** The failed-authentication limit: attempts that need bcrypt are counted before it runs. */
  guard: AuthFailureGuard;
  /** bcrypt verifications at once; above it a fast 503 (half at most for keys matching no live key). */
  maxConcurrent: number;
  now?: () => number;
  /** Observes each bcrypt comparison (metrics, and tests that count them). */
  onBcrypt?: () => void;
  /** Observes each refusal (metrics). */
  onFailure?: (reason: FailureReason) => void;
  /** Observes each verification refused because every bcrypt slot was taken (metrics). */
  onBusy?: () => void;
}

/**
 * How many bcrypt verifications may run at once. A key that matches no live key (a guess) may
 * take at most half of the slots, so a flood of guesses can never take the slots real keys need.
 */
function createSlots(max: number) {
  const guessMax = Math.max(1, Math.floor(max / 2));
  let active = 0;
  let guesses = 0;
  return {
    tryAcquire(guess: boolean): (() => void) | null {
      if (active >= max || (guess && guesses >= guessMax)) return null;
      active++;
      if (guess) guesses++;
      let done = false;
      return () => {
        if (done) return;
        done = true;
        active--;
        if (guess) guesses--;
      };
    },
  };
}

/** A verification that did not run: over the failed-authentication limit, or no free slot, or nobody waiting. */
class NotChecked extends Error {
  constructor(
    readonly answer: AppError,
    readonly giveBack: boolean,
  ) {
    super(answer.message);
  }
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
  const slots = createSlots(deps.maxConcurrent);

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
      pending.then(
        (v) => cache.set(fp, v, generation),
        () => undefined,
      );
    }
    return pending;
  }

  /**
   * A presented key not in the cache. The caller has already counted this attempt against its
   * address and claimed customer. A key whose start matches a live key is checked against its
   * own per-key count instead, so a flood of guesses from a shared address or against one customer
   * does not lock the real keys there out; a guess past either count is refused without bcrypt.
   */
  async function checkUncached(
    customerId: string,
    secret: string,
    start: string,
    reservation: Reservation,
    names: readonly string[],
    opts: VerifyOptions,
  ): Promise<CachedVerdict> {
    const candidates = await repo.findCandidates(db, customerId, start);
    const guess = !candidates.some((c) => judge(c) === null);
    let perKey: Reservation | null = null;
    if (!guess) {
      const name = keyName(customerId, start);
      perKey = await deps.guard.reserve([name]);
      if (perKey.over(name)) throw new NotChecked(perKey.refusal(), false);
    } else if (names.some((n) => reservation.over(n))) {
      throw new NotChecked(reservation.refusal(), false);
    }
    // Nobody is waiting for the answer: spend nothing on it (the attempt stays counted).
    if (opts.clientGone?.()) throw new NotChecked(new AppError('BAD_REQUEST', 'The client closed the connection'), false);
    const release = slots.tryAcquire(guess);
    if (!release) {
      await perKey?.release();
      deps.onBusy?.();
      throw new NotChecked(new ServiceUnavailableError('Too many key verifications at once; retry shortly', { retryAfterSeconds: 1 }), true);
    }
    try {
      if (candidates.length === 0) {
        await burnBcrypt(secret);
        return { ok: false, customerId, keyId: null, keyExpiresAt: null, reason: 'unknown_key' };
      }
      for (const c of candidates) {
        if (!(await compare(secret, c.secretHash))) continue;
        const reason = judge(c);
        if (reason === null) await perKey?.release();
        return { ok: reason === null, customerId, keyId: c.id, keyExpiresAt: c.expiresAt?.getTime() ?? null, ...(reason ? { reason } : {}) };
      }
      return { ok: false, customerId, keyId: null, keyExpiresAt: null, reason: 'wrong_secret' };
    } finally {
      release();
    }
  }

  /**
   * A refusal: audited one row each while it is a 401. Once the limit answers 429 no row is
   * written (rate_limited_total counts them), so a flood cannot turn into a flood of writes.
   */
  async function fail(
    ctx: ActorContext,
    reason: FailureReason,
    customerId: string | null,
    keyId: string | null,
    answer: AppError,
    cached = false,
  ): Promise<never> {
    deps.onFailure?.(reason);
    if (answer.code === 'UNAUTHORIZED') {
      await audit.recordDetached(
        { ...ctx, actor: 'customer', actorId: customerId },
        {
          action: 'auth.customer_key',
          outcome: 'failure',
          targetType: keyId ? 'api_key' : undefined,
          targetId: keyId,
          details: { reason, ...(cached ? { cached: true } : {}) },
        },
      );
    }
    throw answer;
  }

  /** A failure found without bcrypt: counted against the address (and the customer it names), then refused. */
  const cheapFailure = (ctx: ActorContext, customerId: string | null) =>
    deps.guard.fail(customerId ? [addressName(ctx.ip), customerName(customerId)] : [addressName(ctx.ip)]);

  return {
    async verify(presented: string | undefined, ctx: ActorContext, opts: VerifyOptions = {}): Promise<CustomerPrincipal> {
      if (!presented) return fail(ctx, 'missing', null, null, await cheapFailure(ctx, null));
      const parsed = parseKey(presented);
      if (!parsed) return fail(ctx, 'malformed', null, null, await cheapFailure(ctx, null));

      const fp = keyFingerprint(presented);
      let hit: CachedVerdict | undefined = cache.get(fp);
      if (hit?.ok && hit.keyExpiresAt !== null && hit.keyExpiresAt <= now()) {
        hit = { ...hit, ok: false, reason: 'expired' };
        cache.set(fp, hit);
      } else if (hit?.ok && now() >= (hit as CacheEntry).checkAfter) {
        hit = await recheck(fp, hit as CacheEntry);
      }
      if (hit) {
        if (!hit.ok)
          return fail(ctx, (hit.reason ?? 'wrong_secret') as FailureReason, hit.customerId, hit.keyId, await cheapFailure(ctx, hit.customerId), true);
        lastUsed.touch(hit.keyId!, new Date(now()));
        return { customerId: hit.customerId, keyId: hit.keyId! };
      }

      // Counted before anything is spent on it; a success gives it back.
      const names = [addressName(ctx.ip), customerName(parsed.customerId)];
      const reservation = await deps.guard.reserve(names);
      // Concurrent first uses of one key share a single lookup and bcrypt.
      let pending = inFlight.get(fp);
      if (!pending) {
        const generation = cache.generation;
        pending = checkUncached(parsed.customerId, parsed.secret, parsed.start, reservation, names, opts).finally(() => inFlight.delete(fp));
        inFlight.set(fp, pending);
        pending.then(
          (v) => cache.set(fp, v, generation),
          () => undefined,
        );
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
      let verdict: CachedVerdict;
      try {
        verdict = await pending;
      } catch (err) {
        if (!(err instanceof NotChecked)) throw err;
        if (err.giveBack) await reservation.release();
        if (err.answer.code === 'RATE_LIMITED') deps.onFailure?.('rate_limited');
        throw err.answer;
      }
      if (!verdict.ok) return fail(ctx, verdict.reason as FailureReason, verdict.customerId, verdict.keyId, new UnauthorizedError());
      await reservation.release();
      lastUsed.touch(verdict.keyId!, new Date(now()));
      return { customerId: verdict.customerId, keyId: verdict.keyId! };
    },
  };
}

export type KeyVerifier = ReturnType<typeof createKeyVerifier>;
