import { iso } from '../../http/common-schemas';
import { json } from '../../http/response-schemas';
import { defineRoute, type HandlersFor } from '../../http/route';
import { archiveJson, archivesJson, monthParams, restoreBody, restoredResponse, verifiedJson, verifiedResponse } from './usage-retention-schemas';
import { parseMonth, type UsageRetentionService } from './usage-retention-service';

export function usageRetentionRouteSpecs() {
  return {
    getUsageArchives: defineRoute({
      method: 'get',
      path: '/api/usage/archives',
      auth: 'admin',
      summary: 'Usage archives: the months whose raw events retention archived (and dropped), and the archive files found',
      responses: { 200: archivesJson },
    }),
    postUsageArchivesVerify: defineRoute({
      method: 'post',
      path: '/api/usage/archives/:month/verify',
      auth: 'admin',
      summary: 'Verify a month’s archive: its SHA-256, rows and totals against its manifest, and against the month’s partition if it still exists',
      request: { params: monthParams },
      responses: { 200: json(verifiedResponse, 'The archive verifies') },
      errors: ['VALIDATION_FAILED', 'NOT_FOUND', 'CONFLICT'],
      auditAction: 'usage.archive_verify',
    }),
    postUsageArchivesRestore: defineRoute({
      method: 'post',
      path: '/api/usage/archives/:month/restore',
      auth: 'admin',
      summary: 'Put a month’s archived events back in usage_events (verified first; a second restore adds nothing; the daily totals are not touched)',
      request: { params: monthParams, body: restoreBody },
      responses: { 200: json(restoredResponse, 'The events put back') },
      errors: ['VALIDATION_FAILED', 'NOT_FOUND', 'CONFLICT'],
      auditAction: 'usage.archive_restore',
    }),
  };
}

export function usageRetentionHandlers(retention: UsageRetentionService): HandlersFor<ReturnType<typeof usageRetentionRouteSpecs>> {
  return {
    getUsageArchives: async () => ({
      status: 200,
      body: { archive_dir_set: retention.archiveDirSet, data: (await retention.list()).map((r) => archiveJson(r.month, r.archive, r.complete)) },
    }),
    postUsageArchivesVerify: async ({ params }) => {
      const v = await retention.verify(parseMonth(params.month));
      return { status: 200, body: verifiedJson(v.manifest, v.partitionChecked) };
    },
    postUsageArchivesRestore: async ({ params, body, ctx }) => {
      const r = await retention.restore(ctx, parseMonth(params.month), body.keep_days);
      return { status: 200, body: { month: r.month, rows: r.rows, inserted: r.inserted, keep_until: iso(r.keepUntil) } };
    },
  };
}
