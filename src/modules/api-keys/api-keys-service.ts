import bcrypt from 'bcrypt';
import type { Knex } from 'knex';
import { AppError, NotFoundError } from '../../errors/app-error';
import { uuidv7 } from '../../lib/ids';
import type { ActorContext } from '../../lib/request-context';
import type { AuditService } from '../audit/audit-service';
import type { CustomerLookup } from '../customers/customer-lookup';
import type { EventEmitter } from '../events/events-service';
import type { ApiKey, ApiKeysRepository } from './api-keys-repository';
import { createBulkRotationRepository } from './bulk-rotation-repository';
import { createBulkRotationService, type BulkRotationOptions } from './bulk-rotation-service';
import { issuedKeyEvent, revokedKeyEvent } from './key-events';
import { displayStart, generateKey } from './key-format';
import type { KeyInvalidation } from './key-invalidation';
import type { PreparedKey } from './prepared-key';

export interface IssueOptions {
  name?: string | null;
  /** Older active keys stay valid this long; 0 revokes them now. */
  gracePeriodSeconds?: number;
  /** Add a key beside the active ones instead of rotating them. */
  keepExisting?: boolean;
}

export interface ApiKeysServiceDeps {
  db: Knex;
  repo: ApiKeysRepository;
  /** Not the customers service, which issues keys through this one (see customer-lookup.ts). */
  customers: Pick<CustomerLookup, 'assertActive' | 'assertExists' | 'findMany' | 'activeIdsAfter'>;
  audit: AuditService;
  /** api_key.* events, written in the transaction of the change they describe. */
  events: EventEmitter;
  invalidation: KeyInvalidation;
  bcryptCost: number;
  maxActiveKeys: number;
}

export function createApiKeysService(deps: ApiKeysServiceDeps) {
  const { db, repo, customers, audit, events, invalidation, bcryptCost, maxActiveKeys } = deps;

  /** bcrypt runs here, before any transaction opens, so no row lock waits on it. */
  async function prepare(customerId: string): Promise<PreparedKey> {
    const { key, secret, start } = generateKey(customerId);
    return { id: uuidv7(), customerId, key, start, secretHash: await bcrypt.hash(secret, bcryptCost) };
  }

  /** The new key's event: api_key.rotated when it ended `endedKeyIds` (read back in `trx`), else api_key.created. */
  async function emitIssued(trx: Knex, keys: readonly { key: ApiKey; endedKeyIds: readonly string[] }[]): Promise<void> {
    const ended = new Map(
      (
        await repo.findMany(
          trx,
          keys.flatMap((k) => k.endedKeyIds),
        )
      ).map((k) => [k.id, k]),
    );
    await events.emit(
      trx,
      keys.map((k) => issuedKeyEvent(k.key, k.endedKeyIds.map((id) => ended.get(id)!).filter(Boolean))),
    );
  }

  async function insertPrepared(
    trx: Knex,
    ctx: ActorContext,
    p: PreparedKey,
    name: string | null,
    details: Record<string, unknown> = {},
    endedKeyIds: readonly string[] = [],
  ): Promise<ApiKey> {
    const created = await repo.insert(trx, { id: p.id, customerId: p.customerId, name, secretHash: p.secretHash, start: p.start });
    await audit.record(trx, ctx, {
      action: 'api_key.issue',
      outcome: 'success',
      targetType: 'api_key',
      targetId: created.id,
      details: { customer_id: p.customerId, start: displayStart(p.customerId, p.start), ...details },
    });
    await emitIssued(trx, [{ key: created, endedKeyIds }]);
    return created;
  }

  const bulk = createBulkRotationService({
    db,
    repo,
    runs: createBulkRotationRepository(),
    customers,
    audit,
    invalidation,
    prepare,
    emitIssued,
    maxActiveKeys,
  });

  return {
    prepare,
    insertPrepared,
    /** Every active customer (a page of them), or the given ones: one request, all or nothing. */
    rotateMany: (ctx: ActorContext, opts: BulkRotationOptions) => bulk.rotate(ctx, opts),

    async issue(ctx: ActorContext, customerId: string, opts: IssueOptions) {
      const prepared = await prepare(customerId);
      const grace = opts.gracePeriodSeconds ?? 0;
      const mode = opts.keepExisting ? 'add' : 'rotate';
      let endedKeyIds: string[] = [];
      const key = await db.transaction(async (trx) => {
        await customers.assertActive(trx, customerId, { forUpdate: true });
        const active = await repo.countActive(trx, customerId);
        // Keys kept (added beside, or left valid through a grace period) count toward the limit.
        const kept = mode === 'add' || grace > 0 ? active : 0;
        if (kept + 1 > maxActiveKeys) {
          throw new AppError('TOO_MANY_KEYS', `A customer may have at most ${maxActiveKeys} active keys; revoke one, or rotate without a grace period`);
        }
        if (mode === 'rotate') {
          endedKeyIds = await repo.endActive(trx, customerId, grace);
          if (endedKeyIds.length > 0) await invalidation.publish(trx, { customerId, keyIds: endedKeyIds });
        }
        return insertPrepared(
          trx,
          ctx,
          prepared,
          opts.name ?? null,
          {
            mode,
            grace_period_seconds: grace,
            ended_key_ids: endedKeyIds,
          },
          endedKeyIds,
        );
      });
      invalidation.evictLocal({ customerId, keyIds: endedKeyIds });
      return { apiKey: prepared.key, key, endedKeyIds };
    },

    async list(customerId: string): Promise<ApiKey[]> {
      await customers.assertExists(db, customerId);
      return repo.listForCustomer(db, customerId);
    },

    async revoke(ctx: ActorContext, customerId: string, keyId: string): Promise<ApiKey> {
      const key = await db.transaction(async (trx) => {
        const before = await repo.findForCustomer(trx, customerId, keyId);
        if (!before) throw new NotFoundError('API key');
        const revoked = (await repo.revoke(trx, customerId, keyId))!;
        await invalidation.publish(trx, { customerId, keyIds: [keyId] });
        await audit.record(trx, ctx, {
          action: 'api_key.revoke',
          outcome: 'success',
          targetType: 'api_key',
          targetId: keyId,
          details: { customer_id: customerId, already_revoked: before.revokedAt !== null },
        });
        if (before.revokedAt === null) await events.emit(trx, revokedKeyEvent(revoked));
        return revoked;
      });
      invalidation.evictLocal({ customerId, keyIds: [keyId] });
      return key;
    },

    /**
     * For a customer's deletion, inside its transaction; the caller evicts after commit. Each key it
     * revokes gets its own api_key.revoked, as a revocation by hand would.
     */
    async revokeAllInTransaction(trx: Knex, customerId: string): Promise<string[]> {
      const ids = await repo.endActive(trx, customerId, 0);
      await invalidation.publish(trx, { customerId, keyIds: null });
      await events.emit(trx, (await repo.findMany(trx, ids)).map(revokedKeyEvent));
      return ids;
    },
  };
}

export type ApiKeysService = ReturnType<typeof createApiKeysService>;
