import type { Knex } from 'knex';
import { jsonb, type AuditActor, type AuditLogRow, type AuditOutcome } from '../../db/tables';

export interface AuditEntry {
  id: string;
  at: Date;
  actor: AuditActor;
  actorId: string | null;
  action: string;
  outcome: AuditOutcome;
  targetType: string | null;
  targetId: string | null;
  ip: string | null;
  requestId: string | null;
  clientRequestId: string | null;
  details: Record<string, unknown>;
}

export type NewAuditEntry = Omit<AuditEntry, 'id' | 'at'>;

export interface AuditFilter {
  actor?: AuditActor;
  actorId?: string;
  action?: string;
  outcome?: AuditOutcome;
  targetId?: string;
  /** Rows about a customer: as target, as actor, or named in the details (its keys). */
  customerId?: string;
  requestId?: string;
  clientRequestId?: string;
  from?: Date;
  to?: Date;
  beforeId?: string;
  limit: number;
}

const toEntry = (r: AuditLogRow): AuditEntry => ({
  id: r.id,
  at: r.at,
  actor: r.actor,
  actorId: r.actor_id,
  action: r.action,
  outcome: r.outcome,
  targetType: r.target_type,
  targetId: r.target_id,
  ip: r.ip,
  requestId: r.request_id,
  clientRequestId: r.client_request_id,
  details: r.details,
});

export function createAuditRepository() {
  return {
    async insert(db: Knex, entries: NewAuditEntry[]): Promise<void> {
      if (entries.length === 0) return;
      await db('audit_log').insert(
        entries.map((e) => ({
          actor: e.actor,
          actor_id: e.actorId,
          action: e.action,
          outcome: e.outcome,
          target_type: e.targetType,
          target_id: e.targetId,
          ip: e.ip,
          request_id: e.requestId,
          client_request_id: e.clientRequestId,
          details: jsonb(e.details),
        })),
      );
    },

    /** Newest first; `beforeId` continues a previous page. */
    async list(db: Knex, f: AuditFilter): Promise<AuditEntry[]> {
      const q = db('audit_log').select('*').orderBy('id', 'desc').limit(f.limit);
      if (f.actor) q.where('actor', f.actor);
      if (f.actorId) q.where('actor_id', f.actorId);
      if (f.action) q.where('action', f.action);
      if (f.outcome) q.where('outcome', f.outcome);
      if (f.targetId) q.where('target_id', f.targetId);
      if (f.customerId) {
        const id = f.customerId;
        q.where((w) => void w.where('target_id', id).orWhere('actor_id', id).orWhereRaw("details->>'customer_id' = ?", [id]));
      }
      if (f.requestId) q.where('request_id', f.requestId);
      if (f.clientRequestId) q.where('client_request_id', f.clientRequestId);
      if (f.from) q.where('at', '>=', f.from);
      if (f.to) q.where('at', '<', f.to);
      if (f.beforeId) q.where('id', '<', f.beforeId);
      return (await q).map(toEntry);
    },
  };
}

export type AuditRepository = ReturnType<typeof createAuditRepository>;
