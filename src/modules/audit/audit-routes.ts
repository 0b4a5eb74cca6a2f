import { json } from '../../http/response-schemas';
import { auditJson, auditResponse, listAuditQuery } from './audit-schemas';
import { defineRoute, type HandlersFor } from '../../http/route';
import { isBigserialId } from '../../lib/ids';
import { decodeCursor, page } from '../../lib/pagination';
import type { AuditService } from './audit-service';

export function auditRouteSpecs() {
  return {
    getAudit: defineRoute({
      method: 'get',
      path: '/api/audit',
      auth: 'admin',
      summary: 'Read the audit log, newest first, with filters',
      request: { query: listAuditQuery },
      responses: { 200: json(auditResponse, 'A page of audit rows; `next_cursor` fetches the next') },
    }),
  };
}

export function auditHandlers(audit: AuditService): HandlersFor<ReturnType<typeof auditRouteSpecs>> {
  return {
    getAudit: async ({ query }) => {
      const rows = await audit.list({
        actor: query.actor,
        actorId: query.actor_id,
        action: query.action,
        outcome: query.outcome,
        targetId: query.target_id,
        customerId: query.customer_id,
        requestId: query.request_id,
        clientRequestId: query.client_request_id,
        from: query.from,
        to: query.to,
        beforeId: decodeCursor(query.cursor, isBigserialId),
        limit: query.limit + 1,
      });
      const { items, nextCursor } = page(rows, query.limit);
      return { status: 200, body: { data: items.map(auditJson), next_cursor: nextCursor } };
    },
  };
}
