import type { Knex } from 'knex';
import { AppError } from '../../errors/app-error';
import type { ActorContext } from '../../lib/request-context';
import { mapLimit } from '../../lib/map-limit';
import type { AuditService } from '../audit/audit-service';
import type { CustomerLookup } from '../customers/customer-lookup';
import type { ApiKey, ApiKeysRepository } from './api-keys-repository';
import type { BulkRotationRepository } from './bulk-rotation-repository';
import type { PreparedKey } from './prepared-key';
import { displayStart } from './key-format';
import type { KeyInvalidation } from './key-invalidation';

/** Most customers one request rotates: at BCRYPT_COST 12 their hashing alone takes about two minutes. */
export const MAX_BULK_ROTATION = 1000;
/** bcrypt runs in libuv's pool (4 threads by default): leave half of it to key verifications. */
const HASH_CONCURRENCY = 2;

export type SkipReason = 'not_found' | 'deleted' | 'too_many_keys';

export interface BulkRotationOptions {
  gracePeriodSeconds: number;
  /** These customers; otherwise active customers in id order, after `afterId`, `limit` of them. */
  customerIds?: readonly string[];
  afterId?: string;
  limit?: number;
  /** Aborted when the client hangs up: nothing is written after that. */
  signal?: AbortSignal;
  /**
   * The caller's name for this run (the Idempotency-Key header). Sent again, the customers this run
   * already rotated get a fresh key in place of the one it made (revoked at once), their older keys
   * untouched: a run whose answer was lost after its commit is resumed without a key nobody holds.
   */
  idempotencyKey?: string;
}

export interface BulkRotationResult {
  rotated: { customerId: string; apiKey: string; key: ApiKey; endedKeyIds: string[] }[];
  skipped: { customerId: string; reason: SkipReason }[];
  /** The last customer of a full page: pass it back to continue; null when the walk is over. */
  nextAfterId: string | null;
}

export interface BulkRotationDeps {
  db: Knex;
  repo: ApiKeysRepository;
  runs: BulkRotationRepository;
  customers: Pick<CustomerLookup, 'findMany' | 'activeIdsAfter'>;
  audit: AuditService;
  invalidation: KeyInvalidation;
  prepare: (customerId: string) => Promise<PreparedKey>;
  /** Each new key's api_key.rotated (or api_key.created when it ended none), in the run's transaction. */
  emitIssued: (trx: Knex, keys: readonly { key: ApiKey; endedKeyIds: readonly string[] }[]) => Promise<void>;
  maxActiveKeys: number;
}

/**
 * Rotates many customers' keys in one request, with the semantics of a single rotation (grace 0
 * revokes now; older keys otherwise expire after the grace period; cache eviction here and, by
 * NOTIFY on commit, everywhere). All or nothing per request: bcrypt runs first, outside any
 * transaction, then one transaction of set-based statements writes every key, ending and audit
 * row. So the response either carries every new key or nothing changed: a key that was written
 * but never shown would lock its customer out. Customers that cannot be rotated (unknown, deleted,
 * or at the key limit with a grace period) are reported as skipped, not failed.
 */
export function createBulkRotationService(deps: BulkRotationDeps) {
  const { db, repo, runs, customers, audit, invalidation, prepare, emitIssued, maxActiveKeys } = deps;

  async function choose(opts: BulkRotationOptions) {
    const skipped: BulkRotationResult['skipped'] = [];
    if (opts.customerIds) {
      const found = new Map((await customers.findMany(db, opts.customerIds)).map((c) => [c.id, c]));
      const live: string[] = [];
      for (const id of opts.customerIds) {
        const c = found.get(id);
        if (!c) skipped.push({ customerId: id, reason: 'not_found' });
        else if (c.status !== 'active') skipped.push({ customerId: id, reason: 'deleted' });
        else live.push(id);
      }
      return { live, skipped, nextAfterId: null };
    }
    const limit = Math.min(opts.limit ?? MAX_BULK_ROTATION, MAX_BULK_ROTATION);
    const ids = await customers.activeIdsAfter(db, opts.afterId, limit + 1);
    const live = ids.slice(0, limit);
    return { live, skipped, nextAfterId: ids.length > limit ? live[live.length - 1]! : null };
  }

  const hungUp = () => new AppError('BAD_REQUEST', 'The client closed the connection before the keys were written; nothing was changed');

  return {
    async rotate(ctx: ActorContext, opts: BulkRotationOptions): Promise<BulkRotationResult> {
      const grace = opts.gracePeriodSeconds;
      const { live, skipped, nextAfterId } = await choose(opts);
      const prepared = await mapLimit(live, HASH_CONCURRENCY, prepare, opts.signal).catch((err) => {
        throw opts.signal?.aborted ? hungUp() : err;
      });

      const rotated = await db.transaction(async (trx) => {
        // Locked in id order, as every other bulk rotation does: two of them never deadlock.
        const locked = new Map((await customers.findMany(trx, live, { forUpdate: true })).map((c) => [c.id, c]));
        const active = grace > 0 ? await repo.countActiveByCustomer(trx, live) : new Map<string, number>();
        // The keys an earlier attempt of this run made (its answer lost): replaced, not rotated again.
        const earlier = opts.idempotencyKey ? await runs.keysOfRun(trx, opts.idempotencyKey, live) : new Map<string, string>();
        const go: PreparedKey[] = [];
        for (const p of prepared) {
          const c = locked.get(p.customerId);
          // Deleted (or gone) between the first read and the lock.
          if (!c) skipped.push({ customerId: p.customerId, reason: 'not_found' });
          else if (c.status !== 'active') skipped.push({ customerId: p.customerId, reason: 'deleted' });
          // Keys kept through a grace period count toward the limit, as in a single rotation (a
          // replaced key leaves as its replacement comes: the count does not change).
          else if (!earlier.has(p.customerId) && (active.get(p.customerId) ?? 0) + 1 > maxActiveKeys)
            skipped.push({ customerId: p.customerId, reason: 'too_many_keys' });
          else go.push(p);
        }
        const goIds = go.map((p) => p.customerId);
        const resumedIds = goIds.filter((id) => earlier.has(id));
        const ended = [
          ...(await repo.endActiveForCustomers(
            trx,
            goIds.filter((id) => !earlier.has(id)),
            grace,
          )),
          ...(await runs.revokeNow(
            trx,
            resumedIds.map((id) => earlier.get(id)!),
          )),
        ];
        const endedBy = new Map<string, string[]>(goIds.map((id) => [id, []]));
        for (const e of ended) endedBy.get(e.customerId)!.push(e.id);
        await invalidation.publishMany(
          trx,
          goIds.filter((id) => endedBy.get(id)!.length > 0).map((id) => ({ customerId: id, keyIds: endedBy.get(id)! })),
        );
        const keys = await repo.insertMany(
          trx,
          go.map((p) => ({ id: p.id, customerId: p.customerId, name: null, secretHash: p.secretHash, start: p.start })),
        );
        const keyById = new Map(keys.map((k) => [k.id, k]));
        if (opts.idempotencyKey)
          await runs.record(
            trx,
            opts.idempotencyKey,
            go.map((p) => ({ customerId: p.customerId, keyId: p.id })),
          );
        const out = go.map((p) => ({ customerId: p.customerId, apiKey: p.key, key: keyById.get(p.id)!, endedKeyIds: endedBy.get(p.customerId)! }));
        for (const r of out) {
          await audit.record(trx, ctx, {
            action: 'api_key.issue',
            outcome: 'success',
            targetType: 'api_key',
            targetId: r.key.id,
            details: {
              customer_id: r.customerId,
              start: displayStart(r.customerId, r.key.start),
              mode: 'rotate',
              bulk: true,
              ...(earlier.has(r.customerId) ? { resumed: true, replaced_key_id: earlier.get(r.customerId) } : {}),
              grace_period_seconds: grace,
              ended_key_ids: r.endedKeyIds,
            },
          });
        }
        await emitIssued(trx, out);
        await audit.record(trx, ctx, {
          action: 'api_key.bulk_rotate',
          outcome: 'success',
          details: {
            rotated: out.length,
            grace_period_seconds: grace,
            selection: opts.customerIds ? 'customer_ids' : 'active',
            ...(opts.idempotencyKey ? { idempotency_key: opts.idempotencyKey, resumed: resumedIds.length } : {}),
            skipped: skipped.map((s) => ({ customer_id: s.customerId, reason: s.reason })),
            next_after_id: nextAfterId,
          },
        });
        // The last moment to give up: a client gone now would never see these keys.
        if (opts.signal?.aborted) throw hungUp();
        return out;
      });
      for (const r of rotated) if (r.endedKeyIds.length > 0) invalidation.evictLocal({ customerId: r.customerId, keyIds: r.endedKeyIds });
      return { rotated, skipped, nextAfterId };
    },
  };
}

export type BulkRotationService = ReturnType<typeof createBulkRotationService>;
