import { z } from 'zod';
import { ValidationError } from '../../errors/app-error';
import { idParams } from '../../http/common-schemas';
import { json } from '../../http/response-schemas';
import { reportQuery, reportResponse, totalsResponse, usageEventJson, usagePeriodQuery, usagePostedResponse, type UsageSchemas } from './usage-schemas';
import { defineRoute, type HandlersFor } from '../../http/route';
import type { UsageService, UsageInput, Recorded } from './usage-service';
import type { TotalsRow } from './usage-repository';
import type { Deal, Deals } from '../entitlements/deals';
import { meteredUsage } from '../entitlements/metered-usage';

const MAX_PERIOD_DAYS = 400;

/** The period of a usage query: [from, to), by default the current calendar month (UTC). */
export function period(q: { from?: Date; to?: Date }, now = new Date()): { from: Date; to: Date } {
  const from = q.from ?? new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
  const to = q.to ?? new Date(Date.UTC(from.getUTCFullYear(), from.getUTCMonth() + 1, 1));
  if (to <= from) throw new ValidationError('Invalid period', [{ path: 'to', message: 'must be after from' }]);
  if (to.getTime() - from.getTime() > MAX_PERIOD_DAYS * 86_400_000) {
    throw new ValidationError('Invalid period', [{ path: 'to', message: `the period may span at most ${MAX_PERIOD_DAYS} days` }]);
  }
  return { from, to };
}

const totalJson = (r: TotalsRow) => ({
  ...(r.customerId !== undefined ? { customer_id: r.customerId } : {}),
  ...(r.day !== undefined ? { day: r.day } : {}),
  ...(r.metric !== undefined ? { metric: r.metric } : {}),
  quantity: r.quantity,
  events: r.events,
});

/**
 * One customer's totals over the query's period, grouped by metric or by day and metric, and its
 * metered limits over its billing period (whatever the query's period).
 */
async function customerTotals(
  customerId: string,
  query: { from?: Date; to?: Date; group_by: 'metric' | 'day' },
  read: (q: { from: Date; to: Date; groupBy: ('metric' | 'day')[] }) => Promise<TotalsRow[]>,
  metered: () => ReturnType<typeof meteredUsage>,
) {
  const p = period(query);
  // Together: for a customer that does not exist the totals say 404 (its deal is merely empty).
  const [totals, m] = await Promise.all([read({ ...p, groupBy: query.group_by === 'day' ? ['day', 'metric'] : ['metric'] }), metered()]);
  return {
    customer_id: customerId,
    from: p.from.toISOString(),
    to: p.to.toISOString(),
    group_by: query.group_by,
    totals: totals.map(totalJson),
    billing_period: { start: m.period.start.toISOString(), end: m.period.end.toISOString() },
    metered: m.metered,
  };
}

const recordedJson = (r: Recorded) => Object.assign(usageEventJson(r.event), { replayed: !r.created });

const toInput = (e: { metric: string; quantity: string; occurred_at?: Date }, idempotencyKey: string): UsageInput => ({
  metric: e.metric,
  quantity: e.quantity,
  occurredAt: e.occurred_at,
  idempotencyKey,
});

/** The key of one event: in the body or the Idempotency-Key header; both must agree. */
function singleKey(bodyKey: string | undefined, header: string | undefined): string {
  if (bodyKey !== undefined && header !== undefined && bodyKey !== header) {
    throw new ValidationError('Invalid request body', [{ path: 'idempotency_key', message: 'differs from the Idempotency-Key header' }]);
  }
  const key = bodyKey ?? header;
  if (key === undefined)
    throw new ValidationError('Invalid request body', [{ path: 'idempotency_key', message: 'required (in the body or the Idempotency-Key header)' }]);
  return key;
}

const replayed = { 'Idempotent-Replayed': { description: 'true: nothing new was stored, the answer is the original', schema: z.literal('true') } };

export function usageRouteSpecs(schemas: UsageSchemas, bodyLimit: string) {
  return {
    postUsage: defineRoute({
      method: 'post',
      path: '/api/usage',
      auth: 'customer',
      summary: 'Report usage: one event, or {events: [...]} (all or nothing); replays return the original',
      request: { headers: schemas.headers, body: schemas.body, fastBody: schemas.fastBody },
      responses: {
        201: json(usagePostedResponse, 'Stored (for a batch: at least one event is new)'),
        200: { ...json(usagePostedResponse, 'A replay: every event was stored before with the same body; the original is returned'), headers: replayed },
      },
      errors: ['IDEMPOTENCY_CONFLICT'],
      bodyLimit,
      rateLimit: 'usage',
    }),
    getUsage: defineRoute({
      method: 'get',
      path: '/api/usage',
      auth: 'customer',
      summary: 'Own usage totals per metric (or per day) over a period (default the current month), and each metered limit over the billing period',
      request: { query: usagePeriodQuery },
      responses: { 200: json(totalsResponse, 'Totals over [from, to)') },
    }),
    getCustomersByIdUsage: defineRoute({
      method: 'get',
      path: '/api/customers/:id/usage',
      auth: 'admin',
      summary: 'A customer’s usage totals per metric (or per day) over a period, and each metered limit over its billing period',
      request: { params: idParams, query: usagePeriodQuery },
      responses: { 200: json(totalsResponse, 'Totals over [from, to)') },
    }),
    getReportsUsage: defineRoute({
      method: 'get',
      path: '/api/reports/usage',
      auth: 'admin',
      summary: 'Usage of all customers over a period, by customer or by day; JSON or CSV (format=csv)',
      request: { query: reportQuery },
      responses: {
        200: {
          description: 'Rows over [from, to); with format=csv the same rows as CSV, with a header line',
          content: { 'application/json': reportResponse, 'text/csv': z.string() },
          headers: { 'Content-Disposition': { description: 'With format=csv: attachment; filename="usage-<from>.csv"', schema: z.string() } },
        },
      },
    }),
  };
}

/**
 * `deals` reads a deal fresh (an admin sees a change at once); `cachedDeals` is the threshold watch's
 * cache (at most 30 s old, dropped when this instance changes the customer's deal): a customer's own
 * reads, frequent, show what the watch checks against without a deal lookup each.
 */
export function usageHandlers(
  usage: UsageService,
  deals: { fresh: Pick<Deals, 'dealFor'>; cached: { dealOf(customerId: string): Promise<Deal> } },
): HandlersFor<ReturnType<typeof usageRouteSpecs>> {
  const cached = { dealFor: (id: string) => deals.cached.dealOf(id) };
  const metered = (customerId: string, from: Pick<Deals, 'dealFor'>) => () => meteredUsage({ deals: from, usage }, customerId);
  return {
    postUsage: async ({ body, headers, principal }) => {
      if ('events' in body) {
        if (headers['idempotency-key'] !== undefined) {
          throw new ValidationError('Invalid request headers', [{ path: 'idempotency-key', message: 'is for one event; a batch names each event’s key' }]);
        }
        const recorded = await usage.recordBatch(
          principal.customerId,
          body.events.map((e) => toInput(e, e.idempotency_key)),
        );
        const created = recorded.filter((r) => r.created).length;
        const out = {
          created,
          replayed: recorded.length - created,
          events: recorded.map((r) => ({ id: r.id, idempotency_key: r.idempotencyKey, replayed: !r.created })),
        };
        return created > 0 ? { status: 201, body: out } : { status: 200, body: out, headers: { 'Idempotent-Replayed': 'true' } };
      }
      const recorded = await usage.recordOne(principal.customerId, toInput(body, singleKey(body.idempotency_key, headers['idempotency-key'])));
      const out = { event: recordedJson(recorded) };
      return recorded.created ? { status: 201, body: out } : { status: 200, body: out, headers: { 'Idempotent-Replayed': 'true' } };
    },
    getUsage: async ({ query, principal }) => ({
      status: 200,
      body: await customerTotals(
        principal.customerId,
        query,
        (q) => usage.totals({ ...q, customerId: principal.customerId }),
        metered(principal.customerId, cached),
      ),
    }),
    getCustomersByIdUsage: async ({ query, params }) => ({
      status: 200,
      body: await customerTotals(params.id, query, (q) => usage.totalsForCustomer(params.id, q), metered(params.id, deals.fresh)),
    }),
    getReportsUsage: async ({ query }) => {
      const p = period(query);
      const groupBy = query.group_by === 'day' ? (['day', 'metric'] as const) : (['customer', 'metric'] as const);
      const rows = await usage.totals({ ...p, metric: query.metric, customerId: query.customer_id, groupBy: [...groupBy] });
      if (query.format === 'csv') {
        const first = query.group_by === 'day' ? 'day' : 'customer_id';
        const lines = rows.map((r) => [query.group_by === 'day' ? r.day : r.customerId, r.metric, r.quantity, r.events].join(','));
        return {
          status: 200,
          type: 'text/csv',
          body: [`${first},metric,quantity,events`, ...lines].join('\n') + '\n',
          headers: { 'Content-Disposition': `attachment; filename="usage-${p.from.toISOString().slice(0, 10)}.csv"` },
        };
      }
      return { status: 200, body: { from: p.from.toISOString(), to: p.to.toISOString(), group_by: query.group_by, rows: rows.map(totalJson) } };
    },
  };
}
