import bcrypt from 'bcrypt';
import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { AppError, ServiceUnavailableError, UnauthorizedError } from '../../errors/app-error';
import { addressName, customerName, keyAddressName, keyName, type AuthFailureGuard, type Reservation } from '../../security/auth-failure-guard';
import type { ActorContext } from '../../lib/request-context';
import type { AuditService } from '../audit/audit-service';
import type { ApiKeysRepository, KeyCandidate } from './api-keys-repository';
import { KEY_LENGTH, keyFingerprint, parseKey, type ParsedKey } from './key-format';
import type { LastUsedTracker } from './last-used-tracker';
import type { CacheEntry, CachedVerdict, VerificationCache } from './verification-cache';
import { createLanes, createSlots } from './verification-slots';

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
  /** How long an attempt on a key whose start is flooded may wait for that key's lane (default 1 s). */
  laneWaitMs?: number;
  now?: () => number;
  /** Observes each bcrypt comparison (metrics, and tests that count them). */
  onBcrypt?: () => void;
  /** Observes each refusal (metrics). */
  onFailure?: (reason: FailureReason) => void;
  /** Observes each verification refused because every bcrypt slot was taken (metrics). */
  onBusy?: () => void;
}

/**
 * An address this many times past the failed-authentication limit is refused before any lookup:
 * it could only be looked up to find live key starts, and the lookups are what a flood costs.
 */
const FAR_OVER = 5;

/** A verification that did not run: over a limit, no free slot or lane, or nobody waiting. */
class NotChecked extends Error {
  constructor(
    readonly answer: AppError,
    /** Whether the caller gives its attempt back (it was never checked, and it named a live key). */
    readonly giveBack: boolean,
    /** Every caller waiting for it had hung up: one that is still there checks again. */
    readonly abandoned = false,
  ) {
    super(answer.message);
  }
}

/** One check of a presented key, shared by every concurrent caller presenting the same key. */
interface SharedCheck {
  verdict: Promise<CachedVerdict>;
  /** Each waiting caller's "has hung up"; the check is dropped before bcrypt only if all have. */
  waiters: Set<() => boolean>;
}

/**
 * Checks a presented X-API-Key, always in the same order:
 * shape (no bcrypt, no database) -> cache (a stale positive verdict is re-checked by key id,
 * without bcrypt) -> the address's count (far past the limit: refused before any query) -> one
 * indexed lookup -> the counts the key names -> bcrypt -> key and customer state. Every failure is
 * the same 401 to the caller; the reason goes to the audit log.
 * State checks run after bcrypt so unknown, wrong, revoked and expired keys take similar time.
 */
export function createKeyVerifier(deps: KeyVerifierDeps) {
  const { db, repo, cache, audit, lastUsed, bcryptCost, guard } = deps;
  const now = deps.now ?? Date.now;
  const inFlight = new Map<string, SharedCheck>();
  const rechecks = new Map<string, Promise<CachedVerdict>>();
  let dummyHash: Promise<string> | null = null;
  const slots = createSlots(deps.maxConcurrent);
  const lanes = createLanes(deps.laneWaitMs ?? 1000);

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

  const busy = () => new ServiceUnavailableError('Too many key verifications at once; retry shortly', { retryAfterSeconds: 1, quiet: true });

  /**
   * A presented key not in the cache; `own` is the first caller's count by address. A key whose
   * start matches a live key is counted per key and per key and address instead of by address and
   * customer, so a flood from a shared address or against one customer does not lock the real
   * keys there out: past the per-key count it is checked in that key's own lane, one at a time,
   * and only an address past its own count for that key is refused. A guess past its address or
   * customer count is refused without bcrypt; a guess refused as busy stays counted.
   */
  async function checkUncached(key: ParsedKey, ip: string | null, own: Reservation, allGone: () => boolean): Promise<CachedVerdict> {
    const { customerId, secret, start } = key;
    const { customerExists, candidates } = await repo.findCandidatesOf(db, customerId, start);
    const live = candidates.some((c) => judge(c) === null);
    let keyCounts: Reservation | null = null;
    let laneName: string | null = null;
    if (live) {
      const [fromAddress, perKey] = [keyAddressName(customerId, start, ip), keyName(customerId, start)];
      keyCounts = await guard.reserve([fromAddress, perKey]);
      if (keyCounts.over(fromAddress)) throw new NotChecked(keyCounts.refusal(), false);
      if (keyCounts.over(perKey)) laneName = perKey;
    } else {
      if (own.over(addressName(ip))) throw new NotChecked(own.refusal(), false);
      // Only customers that exist get a counter: random ids must not each cost one.
      const perCustomer = customerExists ? await guard.reserve([customerName(customerId)]) : null;
      if (perCustomer?.over(customerName(customerId))) throw new NotChecked(perCustomer.refusal(), false);
    }
    // Nobody is waiting for the answer: spend nothing on it (the attempts stay counted).
    const abandoned = () => new NotChecked(new AppError('BAD_REQUEST', 'The client closed the connection'), false, true);
    if (allGone()) throw abandoned();
    const release = laneName ? await lanes.acquire(laneName) : slots.tryAcquire(!live);
    if (!release) {
      deps.onBusy?.();
      await keyCounts?.release();
      throw new NotChecked(busy(), live);
    }
    try {
      if (allGone()) throw abandoned();
      if (candidates.length === 0) {
        await burnBcrypt(secret);
        return { ok: false, customerId, keyId: null, keyExpiresAt: null, reason: 'unknown_key', customerExists };
      }
      for (const c of candidates) {
        if (!(await compare(secret, c.secretHash))) continue;
        const reason = judge(c);
        if (reason === null) await keyCounts?.release();
        return { ok: reason === null, customerId, keyId: c.id, keyExpiresAt: c.expiresAt?.getTime() ?? null, ...(reason ? { reason } : {}) };
      }
      return { ok: false, customerId, keyId: null, keyExpiresAt: null, reason: 'wrong_secret' };
    } finally {
      release();
    }
  }

  /** The check of this key under way, or a new one. */
  function sharedCheck(fp: string, key: ParsedKey, ctx: ActorContext, own: Reservation): SharedCheck {
    const existing = inFlight.get(fp);
    if (existing) return existing;
    const waiters = new Set<() => boolean>();
    const generation = cache.generation;
    const verdict = checkUncached(key, ctx.ip, own, () => [...waiters].every((gone) => gone())).finally(() => inFlight.delete(fp));
    const check = { verdict, waiters };
    inFlight.set(fp, check);
    verdict.then(
      async (v) => {
        cache.set(fp, v, generation);
        if (!v.ok) return;
        await audit.recordDetached(
          { ...ctx, actor: 'customer', actorId: v.customerId },
          // One success row per key per instance per cache TTL: uses in between are cache hits.
          { action: 'auth.customer_key', outcome: 'success', targetType: 'api_key', targetId: v.keyId, details: { verified_by: 'bcrypt' } },
        );
      },
      () => undefined,
    );
    return check;
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
    deps.onFailure?.(answer.code === 'RATE_LIMITED' ? 'rate_limited' : reason);
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

  /** A failure found without bcrypt: counted against the address (and the customer it names, if it exists), then refused. */
  const cheapFailure = (ctx: ActorContext, customerId: string | null) =>
    guard.fail(customerId ? [addressName(ctx.ip), customerName(customerId)] : [addressName(ctx.ip)]);

  /** A remembered positive verdict that still holds (it may be due for its cheap re-check). */
  function rememberedHit(presented: string): CacheEntry | null {
    const hit = cache.get(keyFingerprint(presented));
    return hit?.ok && (hit.keyExpiresAt === null || hit.keyExpiresAt > now()) ? hit : null;
  }

  return {
    /**
     * The customer of a key this instance has already verified, without bcrypt or a query; null
     * otherwise. The per-address limits count such a caller by its customer instead.
     */
    rememberedCustomer(presented: string | undefined): string | null {
      return presented && presented.length === KEY_LENGTH ? (rememberedHit(presented)?.customerId ?? null) : null;
    },

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
        if (!hit.ok) {
          const answer = await cheapFailure(ctx, hit.customerExists === false ? null : hit.customerId);
          return fail(ctx, (hit.reason ?? 'wrong_secret') as FailureReason, hit.customerId, hit.keyId, answer, true);
        }
        lastUsed.touch(hit.keyId!, new Date(now()));
        return { customerId: hit.customerId, keyId: hit.keyId! };
      }

      // Counted before anything is spent on it; a success gives it back. An address far past its
      // count is refused before the database is asked anything.
      const address = addressName(ctx.ip);
      const own = await guard.reserve([address]);
      if (own.hits(address) > FAR_OVER * guard.max) return fail(ctx, 'rate_limited', parsed.customerId, null, own.refusal());
      const gone = opts.clientGone ?? (() => false);
      let verdict: CachedVerdict;
      for (;;) {
        // Concurrent first uses of one key share a single lookup and bcrypt.
        const check = sharedCheck(fp, parsed, ctx, own);
        check.waiters.add(gone);
        try {
          verdict = await check.verdict;
          break;
        } catch (err) {
          if (!(err instanceof NotChecked)) throw err;
          // Dropped because every caller then waiting had hung up; this one is still here.
          if (err.abandoned && !gone()) continue;
          if (err.giveBack) await own.release();
          if (err.answer.code === 'RATE_LIMITED') deps.onFailure?.('rate_limited');
          throw err.answer;
        } finally {
          check.waiters.delete(gone);
        }
      }
      if (verdict.ok) {
        await own.release();
        lastUsed.touch(verdict.keyId!, new Date(now()));
        return { customerId: verdict.customerId, keyId: verdict.keyId! };
      }
      // Each caller sharing the check is judged by its own count: past it, a 429 and no audit row.
      const answer = own.over(address) ? own.refusal() : new UnauthorizedError();
      return fail(ctx, verdict.reason as FailureReason, verdict.customerId, verdict.keyId, answer);
    },
  };
}

export type KeyVerifier = ReturnType<typeof createKeyVerifier>;
