import type { Request } from 'express';
import { z } from 'zod';
import { ValidationError, type FieldProblem } from '../../errors/app-error';
import { idParams } from '../../http/common-schemas';
import { responses } from '../../http/response-schemas';
import { defineRoute } from '../../http/route';
import { problemsOf } from '../../http/validation';
import type { UsageService, UsageInput, Recorded } from './usage-service';
import { reportQuery, usageEventJson, usagePeriodQuery, UsageSchemas } from './usage-schemas';
import type { TotalsRow } from './usage-repository';

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

/** One customer's totals over the query's period, grouped by metric or by day and metric. */
async function customerTotals(
  customerId: string,
  query: { from?: Date; to?: Date; group_by: 'metric' | 'day' },
  read: (q: { from: Date; to: Date; groupBy: ('metric' | 'day')[] }) => Promise<TotalsRow[]>,
) {
  const p = period(query);
  const totals = await read({ ...p, groupBy: query.group_by === 'day' ? ['day', 'metric'] : ['metric'] });
  return { customer_id: customerId, from: p.from.toISOString(), to: p.to.toISOString(), group_by: query.group_by, totals: totals.map(totalJson) };
}

const recordedJson = (r: Recorded) => ({ ...usageEventJson(r.event), replayed: !r.created });

/** One event, or {events: [...]}; each bad item of a batch is named by its index. */
function parseUsageBody(schemas: UsageSchemas, body: unknown, req: Request): { single?: UsageInput; batch?: UsageInput[] } {
  const toInput = (e: z.output<UsageSchemas['event']>): UsageInput => ({
    metric: e.metric,
    quantity: e.quantity,
    occurredAt: e.occurred_at,
    idempotencyKey: e.idempotency_key,
  });
  if (body && typeof body === 'object' && !Array.isArray(body) && 'events' in body) {
    const outer = schemas.batch.safeParse(body);
    if (!outer.success) throw new ValidationError('Invalid usage batch', problemsOf(outer.error));
    const problems: (FieldProblem & { index: number })[] = [];
    const events: UsageInput[] = [];
    outer.data.events.forEach((raw, index) => {
      const r = schemas.event.safeParse(raw);
      if (r.success) events.push(toInput(r.data));
      else for (const p of problemsOf(r.error)) problems.push({ index, path: `events.${index}${p.path ? `.${p.path}` : ''}`, message: p.message });
    });
    if (problems.length) throw new ValidationError(`Invalid usage batch: ${new Set(problems.map((p) => p.index)).size} bad event(s); nothing was written`, problems);
    return { batch: events };
  }
  const header = req.get('idempotency-key');
  const r = schemas.single.safeParse(body);
  if (!r.success) throw new ValidationError('Invalid usage event', problemsOf(r.error));
  if (header !== undefined) {
    const h = schemas.idempotencyKey.safeParse(header);
    if (!h.success) throw new ValidationError('Invalid usage event', problemsOf(h.error).map((p) => ({ ...p, path: 'Idempotency-Key' })));
    if (r.data.idempotency_key !== undefined && r.data.idempotency_key !== header) {
      throw new ValidationError('Invalid usage event', [{ path: 'idempotency_key', message: 'differs from the Idempotency-Key header' }]);
    }
  }
  const idempotencyKey = r.data.idempotency_key ?? header;
  if (idempotencyKey === undefined) {
    throw new ValidationError('Invalid usage event', [{ path: 'idempotency_key', message: 'required (in the body or the Idempotency-Key header)' }]);
  }
  return { single: toInput({ ...r.data, idempotency_key: idempotencyKey }) };
}

export function usageRoutes(usage: UsageService, schemas: UsageSchemas, bodyLimit: string) {
  return [
    defineRoute({
      method: 'post',
      path: '/api/usage',
      auth: 'customer',
      summary: 'Report usage: one event, or {events: [...]} (all or nothing); replays return the original',
      response: responses.usagePosted,
      body: z.unknown(),
      bodyLimit,
      rateLimit: 'usage',
      async handle({ body, principal, req }, res) {
        const parsed = parseUsageBody(schemas, body, req);
        if (parsed.single) {
          const recorded = await usage.recordOne(principal.customerId, parsed.single);
          if (!recorded.created) res.setHeader('Idempotent-Replayed', 'true');
          res.status(recorded.created ? 201 : 200).json({ event: recordedJson(recorded) });
          return;
        }
        const recorded = await usage.recordBatch(principal.customerId, parsed.batch!);
        const created = recorded.filter((r) => r.created).length;
        if (created === 0) res.setHeader('Idempotent-Replayed', 'true');
        res.status(created > 0 ? 201 : 200).json({
          created,
          replayed: recorded.length - created,
          events: recorded.map((r) => ({ id: r.id, idempotency_key: r.idempotencyKey, replayed: !r.created })),
        });
      },
    }),
    defineRoute({
      method: 'get',
      path: '/api/usage',
      auth: 'customer',
      summary: 'Own usage totals per metric (or per day) over a period; default the current month',
      response: responses.totals,
      query: usagePeriodQuery,
      async handle({ query, principal }, res) {
        res.json(await customerTotals(principal.customerId, query, (q) => usage.totals({ ...q, customerId: principal.customerId })));
      },
    }),
    defineRoute({
      method: 'get',
      path: '/api/customers/:id/usage',
      auth: 'admin',
      summary: 'A customer’s usage totals per metric (or per day) over a period',
      response: responses.totals,
      params: idParams,
      query: usagePeriodQuery,
      async handle({ query, params }, res) {
        res.json(await customerTotals(params.id, query, (q) => usage.totalsForCustomer(params.id, q)));
      },
    }),
    defineRoute({
      method: 'get',
      path: '/api/reports/usage',
      auth: 'admin',
      summary: 'Usage of all customers over a period, by customer or by day; JSON or CSV',
      response: responses.report,
      query: reportQuery,
      async handle({ query }, res) {
        const p = period(query);
        const groupBy = query.group_by === 'day' ? (['day', 'metric'] as const) : (['customer', 'metric'] as const);
        const rows = await usage.totals({ ...p, metric: query.metric, customerId: query.customer_id, groupBy: [...groupBy] });
        if (query.format === 'csv') {
          const first = query.group_by === 'day' ? 'day' : 'customer_id';
          const lines = rows.map((r) => [query.group_by === 'day' ? r.day : r.customerId, r.metric, r.quantity, r.events].join(','));
          res.type('text/csv').setHeader('Content-Disposition', `attachment; filename="usage-${p.from.toISOString().slice(0, 10)}.csv"`);
          res.send([`${first},metric,quantity,events`, ...lines].join('\n') + '\n');
          return;
        }
        res.json({ from: p.from.toISOString(), to: p.to.toISOString(), group_by: query.group_by, rows: rows.map(totalJson) });
      },
    }),
  ];
}
