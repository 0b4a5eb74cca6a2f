import { z } from 'zod';
import { iso, safeRecord, text } from '../../http/common-schemas';
import { entitlementsSchema, type Plan } from './plan-types';
import { id, list, obj, timestamp } from '../../http/response-schemas';

const stripePriceId = z.string().regex(/^price_[A-Za-z0-9]{1,100}$/, 'must be a Stripe price id (price_…)');

export const planCode = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'lowercase letters, digits, _ and - (at most 64)');

export const planParams = z.object({ code: planCode });

export function planSchemas(metrics: readonly string[]) {
  const meteredPrices = safeRecord(
    z
      .record(z.string(), stripePriceId)
      .refine((m) => Object.keys(m).every((k) => metrics.includes(k)), { message: `keys must be metrics: ${metrics.join(', ')}` }),
  );
  return {
    create: z.strictObject({
      code: planCode,
      name: text(200),
      entitlements: entitlementsSchema,
      stripe_price_id: stripePriceId.optional(),
      metered_prices: meteredPrices.optional(),
    }),
    update: z
      .strictObject({
        name: text(200).optional(),
        entitlements: entitlementsSchema.optional(),
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
  entitlements: obj({ features: z.array(z.string()), limits: z.record(z.string(), z.number().nullable()) }),
  stripe_price_id: z.string().nullable(),
  metered_prices: z.record(z.string(), z.string()),
  status: z.enum(['active', 'archived']),
  created_at: timestamp,
  updated_at: timestamp,
});

export const planResponse = obj({ plan: planResponseItem });
export const plansResponse = list(planResponseItem);
