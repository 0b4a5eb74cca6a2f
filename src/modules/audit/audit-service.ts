import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { AuditOutcome } from '../../db/tables';
import type { ActorContext } from '../../lib/request-context';
import type { AuditFilter, AuditEntry, AuditRepository } from './audit-repository';

export interface AuditEvent {
  action: string;
  outcome: AuditOutcome;
  targetType?: string;
  targetId?: string | null;
  /** Facts about the action. Callers pass ids and field names, never a secret or a whole key. */
  details?: Record<string, unknown>;
}

export interface AuditServiceDeps {
  db: Knex;
  repo: AuditRepository;
  logger: Logger;
}

export function createAuditService({ db, repo, logger }: AuditServiceDeps) {
  const toRow = (ctx: ActorContext, e: AuditEvent) => ({
    actor: ctx.actor,
    actorId: ctx.actorId,
    action: e.action,
    outcome: e.outcome,
    targetType: e.targetType ?? null,
    targetId: e.targetId ?? null,
    ip: ctx.ip,
    requestId: ctx.requestId,
    clientRequestId: ctx.clientRequestId ?? null,
    details: e.details ?? {},
  });

  return {
    /** Written in the caller's transaction, so an action and its audit row commit together. */
    async record(trx: Knex, ctx: ActorContext, event: AuditEvent): Promise<void> {
      await repo.insert(trx, [toRow(ctx, event)]);
    },

    /**
     * For events outside any transaction (authentication outcomes): the request's own
     * answer never depends on it, so a failed write is logged and not rethrown.
     */
    async recordDetached(ctx: ActorContext, event: AuditEvent): Promise<void> {
      try {
        await repo.insert(db, [toRow(ctx, event)]);
      } catch (err) {
        logger.error({ err, action: event.action, requestId: ctx.requestId }, 'audit write failed');
      }
    },

    list(filter: AuditFilter): Promise<AuditEntry[]> {
      return repo.list(db, filter);
    },
  };
}

export type AuditService = ReturnType<typeof createAuditService>;
