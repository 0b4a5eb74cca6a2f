import type { AuditEntry } from '../admin-client';
import { action, int, printPages, type Deps, type Program } from '../context';
import { table } from '../io';
import { progress } from '../progress';
import { dateFlag } from '../dates';

const auditTable = (rows: AuditEntry[]) =>
  table(rows, [
    { header: 'at', value: (e) => e.at },
    { header: 'actor', value: (e) => (e.actor_id ? `${e.actor}:${e.actor_id.replace(/^admin:/, '')}` : e.actor) },
    { header: 'action', value: (e) => e.action },
    { header: 'outcome', value: (e) => e.outcome },
    { header: 'target', value: (e) => (e.target_id ? `${e.target_type ?? ''}:${e.target_id}` : '') },
    { header: 'ip', value: (e) => e.ip ?? '' },
    { header: 'request id', value: (e) => e.request_id ?? '' },
  ]);

export function auditCommands(program: Program, deps: Deps): void {
  program
    .command('audit')
    .description('read the audit log, newest first (one page; --all follows every page)')
    .option('--actor <actor>', 'admin, customer, stripe or system')
    .option('--actor-id <id>', 'e.g. admin:<fingerprint> or a customer id')
    .option('--action <action>', 'e.g. customer.create, api_key.revoke')
    .option('--outcome <outcome>', 'success, failure or denied')
    .option('--customer <id>', 'rows about this customer')
    .option('--target <id>', 'rows about this target id')
    .option('--request-id <id>', 'rows of this request (the X-Request-Id of an answer)')
    .option('--client-request-id <id>', 'rows of the request that sent this X-Request-Id')
    .option('--from <date>', 'from this date or date-time, included (2026-11-01: its midnight, UTC; 2026-11-01T09:30; with an offset)', dateFlag)
    .option('--to <date>', 'up to this date or date-time, excluded (same forms as --from)', dateFlag)
    .option('--limit <n>', 'rows per page (1-200)', int(1, 200))
    .option('--cursor <cursor>', 'start at this page')
    .option('--all', 'follow every page (a progress line on stderr when it is a terminal)')
    .action(
      action(deps, async (ctx, o) => {
        const query = {
          actor: o.actor as AuditEntry['actor'] | undefined,
          actor_id: o.actorId,
          action: o.action,
          outcome: o.outcome as AuditEntry['outcome'] | undefined,
          customer_id: o.customer,
          target_id: o.target,
          request_id: o.requestId,
          client_request_id: o.clientRequestId,
          from: o.from,
          to: o.to,
          limit: o.limit,
        };
        await printPages(ctx, o, (cursor) => ctx.client().listAudit({ ...query, cursor }), auditTable, 'audit rows', progress(ctx.io, 'audit'));
      }),
    );
}
