import { z } from 'zod';
import { ValidationError } from '../../errors/app-error';
import { json } from '../../http/response-schemas';
import { defineRoute, type HandlersFor } from '../../http/route';
import { UUID_RE } from '../../lib/ids';
import { decodeCursor, encodeCursor } from '../../lib/pagination';
import { lateReportQuery, lateReportResponse, lateRetryBody, lateRetryResponse, totalJson, trueUpJson, trueUpsCsv } from './true-ups-schemas';
import type { TrueUpsService } from './true-ups-service';

/** The CSV holds every true-up the filters match, up to this many (narrow from/to for more). */
export const LATE_CSV_MAX_ROWS = 50_000;

export function trueUpsRouteSpecs() {
  return {
    getReportsUsageLate: defineRoute({
      method: 'get',
      path: '/api/reports/usage/late',
      auth: 'admin',
      summary: 'Late usage billed by true-ups (one per bundle and metric), newest first, with totals per metric; JSON or CSV (format=csv)',
      description:
        '`from` and `to` bound when a true-up was recorded (its `created_at`, when its bundle was uploaded), not when its usage ' +
        'happened (`occurred_from`..`occurred_to`). `totals` sum every true-up the filters match, whatever the page. ' +
        `format=csv answers every true-up the filters match (at most ${LATE_CSV_MAX_ROWS}; more is a 422: narrow from/to).`,
      request: { query: lateReportQuery },
      responses: {
        200: {
          description: 'A page of true-ups (`next_cursor` fetches the next) and the totals; with format=csv every matching true-up, with a header line',
          content: { 'application/json': lateReportResponse, 'text/csv': z.string() },
          headers: { 'Content-Disposition': { description: 'With format=csv: attachment; filename="late-usage.csv"', schema: z.string() } },
        },
      },
    }),
    postReportsUsageLateRetry: defineRoute({
      method: 'post',
      path: '/api/reports/usage/late/retry',
      auth: 'admin',
      summary: 'Queue failed true-ups for billing again, with a fresh budget of attempts (all, or the ids given)',
      request: { body: lateRetryBody },
      responses: { 200: json(lateRetryResponse, 'The true-ups queued again (those given that were not failed are left as they are)') },
      auditAction: 'usage.true_up_retry',
    }),
  };
}

export function trueUpsHandlers(trueUps: TrueUpsService): HandlersFor<ReturnType<typeof trueUpsRouteSpecs>> {
  return {
    getReportsUsageLate: async ({ query }) => {
      if (query.from && query.to && query.to <= query.from) throw new ValidationError('Invalid period', [{ path: 'to', message: 'must be after from' }]);
      const filter = { customerId: query.customer_id, metric: query.metric, state: query.state, createdFrom: query.from, createdTo: query.to };
      if (query.format === 'csv') {
        const rows = await trueUps.all(filter, LATE_CSV_MAX_ROWS);
        if (rows.length > LATE_CSV_MAX_ROWS) {
          throw new ValidationError('Too many true-ups for one CSV', [{ path: 'to', message: `more than ${LATE_CSV_MAX_ROWS} match: narrow from and to` }]);
        }
        return { status: 200, type: 'text/csv', body: trueUpsCsv(rows), headers: { 'Content-Disposition': 'attachment; filename="late-usage.csv"' } };
      }
      const beforeId = decodeCursor(query.cursor, (s) => UUID_RE.test(s));
      const r = await trueUps.report(filter, { beforeId, limit: query.limit });
      const last = r.items[r.items.length - 1];
      const nextCursor = r.more && last ? encodeCursor(last.id) : null;
      return { status: 200, body: { data: r.items.map(trueUpJson), next_cursor: nextCursor, totals: r.totals.map(totalJson) } };
    },
    postReportsUsageLateRetry: async ({ body, ctx }) => {
      const ids = await trueUps.retry(ctx, body.ids ?? null);
      return { status: 200, body: { requeued: ids.length, ids } };
    },
  };
}
