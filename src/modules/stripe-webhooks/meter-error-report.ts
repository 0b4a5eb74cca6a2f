import { z } from 'zod';

/**
 * `v1.billing.meter.error_report_triggered`: Stripe validates meter event stream events after it has
 * accepted them, and reports the invalid ones in windows (validation_start..validation_end). It is a
 * v2 "thin" event in stripe-node 23 (V1BillingMeterErrorReportTriggeredEvent); delivered to a classic
 * webhook endpoint, its data is under `data.object`:
 *
 *   { developer_message_summary, validation_start, validation_end, meter?,
 *     reason: { error_count, error_types: [ { code, error_count,
 *       sample_errors: [ { error_message, request: { identifier } } ] } ] } }
 *
 * Stripe names *sample* errors only: `request.identifier` is the meter event's identifier (our usage
 * event id). Earlier documentation called it `api_request`; both are read. Events beyond the samples
 * are not named, so they cannot be marked: the audit row keeps Stripe's total (error_count) beside
 * the number named, and the summary goes to the log.
 */
export const METER_ERROR_REPORT = 'v1.billing.meter.error_report_triggered';

const sample = z.looseObject({
  error_message: z.string().max(10_000).optional(),
  request: z.looseObject({ identifier: z.string().max(255).optional() }).nullish(),
  api_request: z.looseObject({ identifier: z.string().max(255).optional() }).nullish(),
});
const report = z.looseObject({
  developer_message_summary: z.string().max(10_000).nullish(),
  meter: z.string().max(255).nullish(),
  reason: z.looseObject({
    error_count: z.number().int().nonnegative().optional(),
    error_types: z
      .array(
        z.looseObject({
          code: z.string().min(1).max(100),
          error_count: z.number().int().nonnegative().optional(),
          sample_errors: z.array(sample).max(10_000).default([]),
        }),
      )
      .max(1000),
  }),
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface ParsedErrorReport {
  /** Our events Stripe names, each with `<code>: <message>` (short, for admins). */
  rejections: { id: string; error: string }[];
  errorCount: number;
  /** Identifiers that cannot be ours (not a UUID): another integration's events. */
  foreign: number;
  summary: string | null;
  meter: string | null;
}

/** null when the object is not an error report (refused as malformed by the caller). */
export function parseMeterErrorReport(object: unknown): ParsedErrorReport | null {
  const parsed = report.safeParse(object);
  if (!parsed.success) return null;
  const r = parsed.data;
  const byId = new Map<string, string>();
  let foreign = 0;
  for (const type of r.reason.error_types) {
    for (const s of type.sample_errors) {
      const identifier = s.request?.identifier ?? s.api_request?.identifier;
      if (!identifier) continue;
      if (!UUID.test(identifier)) {
        foreign++;
        continue;
      }
      const message = (s.error_message ?? '').replace(/\s+/g, ' ').trim().slice(0, 200);
      if (!byId.has(identifier.toLowerCase())) byId.set(identifier.toLowerCase(), `STRIPE_REJECTED ${type.code}${message ? `: ${message}` : ''}`);
    }
  }
  return {
    rejections: [...byId].map(([id, error]) => ({ id, error })),
    errorCount: r.reason.error_count ?? r.reason.error_types.reduce((n, t) => n + (t.error_count ?? t.sample_errors.length), 0),
    foreign,
    summary: r.developer_message_summary?.slice(0, 500) ?? null,
    meter: r.meter ?? null,
  };
}
