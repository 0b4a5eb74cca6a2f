import { z } from 'zod';
import { iso, safeRecord, text } from '../../http/common-schemas';
import { entitlementsSchema, localPricingSchema, type Plan } from './plan-types';
import { id, list, obj, timestamp } from '../../http/response-schemas';

const stripePriceId = z.string().regex(/^price_[A-Za-z0-9]{1,100}$/, 'must be a Stripe price id (price_…)');

export const planCode = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'lowercase letters, digits, _ and - (at most 64)');

export const planParams = z.object({ code: planCode });

/**
 * A plan's overage policies name metered limits only: a usage metric the plan gives a number for
 * (an allowance per billing period). Anything else is refused at `entitlements.overage.<name>`.
 */
export function meteredEntitlements(metrics: readonly string[]) {
  return entitlementsSchema.superRefine((e, ctx) => {
    for (const name of Object.keys(e.overage ?? {})) {
      if (!metrics.includes(name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['overage', name],
          message: `an overage policy is for a metered limit, and "${name}" is not a usage metric (${metrics.join(', ')})`,
        });
      } else if (typeof e.limits[name] !== 'number') {
        ctx.addIssue({
          code: 'custom',
          path: ['overage', name],
          message: `"${name}" has no allowance: give limits.${name} a number to set its overage policy`,
        });
      }
    }
  });
}

/**
 * A plan's local pricing prices usage metrics only: each key of `metered` is checked on the raw
 * object (before zod's record, which would skip a reserved name without a word), at
 * `local_pricing.metered.<name>`.
 */
export function localPricing(metrics: readonly string[]) {
  return z.preprocess((value, ctx) => {
    const metered = (value as { metered?: unknown } | null)?.metered;
    if (metered !== null && typeof metered === 'object' && !Array.isArray(metered)) {
      for (const name of Object.keys(metered)) {
        if (!metrics.includes(name)) {
          ctx.addIssue({
            code: 'custom',
            path: ['metered', name],
            message: `local pricing is per usage metric, and "${name}" is not one (${metrics.join(', ')})`,
            input: value,
          });
        }
      }
    }
    return value;
  }, localPricingSchema);
}

export function planSchemas(metrics: readonly string[]) {
  const entitlements = meteredEntitlements(metrics);
  const pricing = localPricing(metrics);
  const meteredPrices = safeRecord(
    z
      .record(z.string(), stripePriceId)
      .refine((m) => Object.keys(m).every((k) => metrics.includes(k)), { message: `keys must be metrics: ${metrics.join(', ')}` }),
  );
  return {
    create: z.strictObject({
      code: planCode,
      name: text(200),
      entitlements,
      stripe_price_id: stripePriceId.optional(),
      metered_prices: meteredPrices.optional(),
      local_pricing: pricing.nullable().optional(),
    }),
    update: z
      .strictObject({
        name: text(200).optional(),
        entitlements: entitlements.optional(),
        stripe_price_id: stripePriceId.nullable().optional(),
        metered_prices: meteredPrices.optional(),
        /** null: clears it (the estimate then has no amounts). */
        local_pricing: pricing.nullable().optional(),
        status: z.enum(['active', 'archived']).optional(),
      })
      .refine((b) => Object.keys(b).length > 0, { message: 'give at least one field to change' }),
    list: z.strictObject({ status: z.enum(['active', 'archived']).optional() }),
  };
}

export const planJson = (p: Plan) => ({
  id: p.id,
  code: p.code,
  name: p.name,
  entitlements: p.entitlements,
  stripe_price_id: p.stripePriceId,
  metered_prices: p.meteredPrices,
  local_pricing: p.localPricing,
  status: p.status,
  created_at: iso(p.createdAt),
  updated_at: iso(p.updatedAt),
});

/** A plan as answers show it. */
export const planResponseItem = obj({
  id,
  code: z.string(),
  name: z.string(),
  entitlements: obj({
    features: z.array(z.string()),
    limits: z.record(z.string(), z.number().nullable()),
    overage: z.record(z.string(), z.union([z.enum(['block', 'allow']), z.number()])).optional(),
    thresholds: z.array(z.number().int()).optional(),
  }),
  stripe_price_id: z.string().nullable(),
  metered_prices: z.record(z.string(), z.string()),
  local_pricing: obj({
    currency: z.string(),
    unit_amount: z.number().int().describe('The base price per billing period, in minor units'),
    metered: z.record(z.string(), z.string()).describe('{metric: the price of one unit, in minor units, as a decimal string}'),
  })
    .nullable()
    .describe('What the plan costs for the local estimate of the period’s charges (GET /api/invoices/upcoming with Stripe off); null: none'),
  status: z.enum(['active', 'archived']),
  created_at: timestamp,
  updated_at: timestamp,
});

export const planResponse = obj({ plan: planResponseItem });
export const plansResponse = list(planResponseItem);
