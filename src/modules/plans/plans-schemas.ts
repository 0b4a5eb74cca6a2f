import { z } from 'zod';
import { iso, safeRecord, text } from '../../http/common-schemas';
import { entitlementsSchema, type Plan } from './plan-types';
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

export function planSchemas(metrics: readonly string[]) {
  const entitlements = meteredEntitlements(metrics);
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
    }),
    update: z
      .strictObject({
        name: text(200).optional(),
        entitlements: entitlements.optional(),
        stripe_price_id: stripePriceId.nullable().optional(),
        metered_prices: meteredPrices.optional(),
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
  status: z.enum(['active', 'archived']),
  created_at: timestamp,
  updated_at: timestamp,
});

export const planResponse = obj({ plan: planResponseItem });
export const plansResponse = list(planResponseItem);
