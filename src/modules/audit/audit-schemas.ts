import { z } from 'zod';
import { isoDate, iso } from '../../http/common-schemas';
import { paginationQuery } from '../../lib/pagination';
import type { AuditEntry } from './audit-repository';

export const listAuditQuery = z.strictObject({
  actor: z.enum(['admin', 'customer', 'stripe', 'system']).optional(),
  actor_id: z.string().max(200).optional(),
  action: z.string().max(100).optional(),
  outcome: z.enum(['success', 'failure', 'denied']).optional(),
  target_id: z.string().max(200).optional(),
  customer_id: z.string().max(200).optional(),
  request_id: z.string().max(200).optional(),
  from: isoDate.optional(),
  to: isoDate.optional(),
  ...paginationQuery,
});

export const auditJson = (e: AuditEntry) => ({
  id: e.id,
  at: iso(e.at),
  actor: e.actor,
  actor_id: e.actorId,
  action: e.action,
  outcome: e.outcome,
  target_type: e.targetType,
  target_id: e.targetId,
  ip: e.ip,
  request_id: e.requestId,
  details: e.details,
});
