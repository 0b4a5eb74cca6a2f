import { z } from 'zod';
import { actorId, isoDate, iso, requestIdFilter, targetId, uuid } from '../../http/common-schemas';
import { paginationQuery } from '../../lib/pagination';
import type { AuditEntry } from './audit-repository';
import { id, obj, page, timestamp } from '../../http/response-schemas';

export const listAuditQuery = z.strictObject({
  actor: z.enum(['admin', 'customer', 'stripe', 'system']).optional(),
  actor_id: actorId.optional(),
  action: z
    .string()
    .regex(/^[a-z][a-z0-9_.]{0,99}$/, 'lowercase letters, digits, _ and . (at most 100)')
    .optional(),
  outcome: z.enum(['success', 'failure', 'denied']).optional(),
  target_id: targetId.optional(),
  customer_id: uuid.optional(),
  request_id: requestIdFilter.optional(),
  client_request_id: requestIdFilter.optional(),
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
  client_request_id: e.clientRequestId,
  details: e.details,
});

export const auditResponse = page(
  obj({
    id,
    at: timestamp,
    actor: z.enum(['admin', 'customer', 'stripe', 'system']),
    actor_id: z.string().nullable(),
    action: z.string(),
    outcome: z.enum(['success', 'failure', 'denied']),
    target_type: z.string().nullable(),
    target_id: z.string().nullable(),
    ip: z.string().nullable(),
    request_id: z.string().nullable(),
    client_request_id: z.string().nullable(),
    details: z.record(z.string(), z.unknown()),
  }),
);
