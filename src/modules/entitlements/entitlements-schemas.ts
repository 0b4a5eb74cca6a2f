import { z } from 'zod';
import { iso, isoDateTime, text } from '../../http/common-schemas';
import { obj, nullableTimestamp, timestamp } from '../../http/response-schemas';
import { featuresSchema, INSTANCE_LIMIT, limitsSchema, overageSchema, thresholdsSchema, type Entitlements } from '../plans/plan-types';
import { planResponseItem } from '../plans/plans-schemas';
import { overridesApply, type EffectiveEntitlements, type MeteredStatus, type Overrides, type UsagePeriod } from './entitlement-rules';

export const INSTANCES_AT_TOP = 'the instance limit of a customer’s deal is the top-level "instances" (a number, or null for unlimited), not limits.instances';

/**
 * The body of PUT /api/customers/:id/entitlements: the customer's overrides, replacing any it has.
 * Checked here: names, ranges, a feature both added and removed, an end already past, an overage
 * policy for a name that is not a usage metric. Whether each overage policy has an allowance to act
 * on (a number in the plan's limits with these applied) needs the customer's plan: the service checks it.
 */
export function overrideSchemas(metrics: readonly string[], now: () => number = Date.now) {
  const features = z.strictObject({ add: featuresSchema.default([]), remove: featuresSchema.default([]) }).superRefine((f, ctx) => {
    f.remove.forEach((name, i) => {
      if (f.add.includes(name)) ctx.addIssue({ code: 'custom', path: ['remove', i], message: `"${name}" is both added and removed: give it in one list` });
    });
  });
  const limits = limitsSchema.superRefine((l, ctx) => {
    if (Object.hasOwn(l, INSTANCE_LIMIT)) ctx.addIssue({ code: 'custom', path: [INSTANCE_LIMIT], message: INSTANCES_AT_TOP });
  });
  const overage = overageSchema.superRefine((o, ctx) => {
    for (const name of Object.keys(o)) {
      if (!metrics.includes(name)) {
        ctx.addIssue({
          code: 'custom',
          path: [name],
          message: `an overage policy is for a metered limit, and "${name}" is not a usage metric (${metrics.join(', ')})`,
        });
      }
    }
  });
  const expiresAt = isoDateTime('must be an ISO 8601 date-time with a time zone (Z or an offset)')
    .refine((s) => Date.parse(s) > now(), { message: 'must be in the future: overrides past their end no longer apply' })
    .transform((s) => new Date(s));

  return {
    put: z.strictObject({
      features: features.default({ add: [], remove: [] }),
      limits: limits.default({}),
      /** Absent: the plan's `limits.instances`; null: unlimited. */
      instances: z.number().int().min(0).max(1e12).nullable().optional(),
      overage: overage.optional(),
      thresholds: thresholdsSchema.optional(),
      note: text(500).nullable().optional(),
      expires_at: expiresAt.nullable().optional(),
    }),
  };
}

export type OverridesBody = z.output<ReturnType<typeof overrideSchemas>['put']>;

// ---- Answers

const policy = z.union([z.enum(['block', 'allow']), z.number()]);

export const effectiveResponse = obj({
  features: z.array(z.string()),
  limits: z.record(z.string(), z.number().nullable()),
  overage: z.record(z.string(), policy),
  thresholds: z.array(z.number().int()),
});

const overridesResponse = obj({
  features: obj({ add: z.array(z.string()), remove: z.array(z.string()) }),
  limits: z.record(z.string(), z.number().nullable()),
  instances: z.number().nullable().optional(),
  overage: z.record(z.string(), policy),
  thresholds: z.array(z.number().int()).optional(),
  note: z.string().nullable(),
  expires_at: nullableTimestamp,
  applies: z.boolean(),
  created_at: timestamp,
  updated_at: timestamp,
});

const meteredResponse = obj({
  allowance: z.number(),
  used: z.string(),
  percent: z.number().nullable(),
  thresholds: z.array(z.number().int()),
  thresholds_crossed: z.array(z.number().int()),
  overage: policy,
  blocks_at: z.string().nullable(),
  state: z.enum(['ok', 'warn', 'over_tolerated', 'blocked']),
});

export const entitlementsResponse = obj({
  plan: obj({ code: z.string(), name: z.string(), entitlements: planResponseItem.shape.entitlements }).nullable(),
  overrides: overridesResponse.nullable(),
  effective: effectiveResponse,
  period: obj({ start: timestamp, end: timestamp }),
  metered: z.record(z.string(), meteredResponse),
});

export const effectiveJson = (e: EffectiveEntitlements) => ({ features: e.features, limits: e.limits, overage: e.overage, thresholds: e.thresholds });

/** Overrides as the API shows them; `applies` at `nowMs`. `instances` and `thresholds` only when they are overridden. */
export const overridesJson = (o: Overrides, nowMs: number) => ({
  features: { add: o.terms.features.add, remove: o.terms.features.remove },
  limits: o.terms.limits,
  ...(o.terms.instances !== undefined ? { instances: o.terms.instances } : {}),
  overage: o.terms.overage ?? {},
  ...(o.terms.thresholds !== undefined ? { thresholds: o.terms.thresholds } : {}),
  note: o.note,
  expires_at: iso(o.expiresAt),
  applies: overridesApply(o, nowMs),
  created_at: iso(o.createdAt),
  updated_at: iso(o.updatedAt),
});

/**
 * What the answer is made of: a deal (deals.ts) as read at `at`. Declared here rather than imported, so
 * that the customers module can show effective entitlements (GET /api/me) without its schemas reaching
 * the deals' dependencies (subscriptions, then customers again).
 */
export interface DealShown {
  plan: { code: string; name: string; entitlements: Entitlements } | null;
  overrides: Overrides | null;
  effective: EffectiveEntitlements;
  period: UsagePeriod;
  at: number;
}

/** GET /api/customers/:id/entitlements (and the answer of PUT and DELETE). */
export const entitlementsJson = (deal: DealShown, metered: Record<string, MeteredStatus>) => ({
  plan: deal.plan ? { code: deal.plan.code, name: deal.plan.name, entitlements: deal.plan.entitlements } : null,
  overrides: deal.overrides ? overridesJson(deal.overrides, deal.at) : null,
  effective: effectiveJson(deal.effective),
  period: { start: iso(deal.period.start), end: iso(deal.period.end) },
  metered,
});
