import { z } from 'zod';
import { iso, notReserved, safeRecord, text } from '../../http/common-schemas';
import type { Plan } from './plans-repository';
import { id, list, obj, timestamp } from '../../http/response-schemas';

const name = z
  .string()
  .regex(/^[a-z][a-z0-9_.-]{0,63}$/, 'lowercase letters, digits, _ . - (at most 64)')
  .refine(notReserved, { error: (issue) => `"${String(issue.input)}" is a reserved name` });
const stripePriceId = z.string().regex(/^price_[A-Za-z0-9]{1,100}$/, 'must be a Stripe price id (price_…)');

/** What a plan grants: feature flags, numeric limits (null: unlimited), and seats. */
export const entitlementsSchema = z.strictObject({
  features: z
    .array(name)
    .max(100)
    .refine((f) => new Set(f).size === f.length, { message: 'must not repeat a feature' }),
  limits: safeRecord(
    z.record(name, z.number().int().min(0).max(1e12).nullable()).refine((l) => Object.keys(l).length <= 100, {
      message: 'at most 100 limits',
    }),
  ),
  seats: z.number().int().min(0).max(1_000_000).nullable().optional(),
});

export type Entitlements = z.infer<typeof entitlementsSchema>;

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
  entitlements: obj({ features: z.array(z.string()), limits: z.record(z.string(), z.number().nullable()), seats: z.number().nullable().optional() }),
  stripe_price_id: z.string().nullable(),
  metered_prices: z.record(z.string(), z.string()),
  status: z.enum(['active', 'archived']),
  created_at: timestamp,
  updated_at: timestamp,
});

export const planResponse = obj({ plan: planResponseItem });
export const plansResponse = list(planResponseItem);
