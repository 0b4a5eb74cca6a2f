import { z } from 'zod';
import { notReserved, safeRecord } from '../../http/common-schemas';

/**
 * A plan and what it grants, in their own file so that `db/tables.ts` (which types the
 * `plans.entitlements` column), the plans module's schemas and repository, and the modules that read
 * plans all take them from here, without importing each other or the plans repository.
 */

export const entitlementName = z
  .string()
  .regex(/^[a-z][a-z0-9_.-]{0,63}$/, 'lowercase letters, digits, _ . - (at most 64)')
  .refine(notReserved, { error: (issue) => `"${String(issue.input)}" is a reserved name` });

/** The one limit the service enforces itself: how many instances may hold an activation at once. */
export const INSTANCE_LIMIT = 'instances';

/** `entitlements.seats` was accepted until it was removed: it was never enforced. Said plainly to whoever still sends it. */
export const SEATS_REMOVED =
  'seats is no longer a plan entitlement (it was never enforced): the number of instances a customer may activate is limits.instances';

/** What a metered limit does past its allowance: stop at 100% (`block`), never stop (`allow`), or stop at a multiple (1.1-3). */
export const overagePolicy = z.union([
  z.enum(['block', 'allow']),
  z
    .number()
    .min(1.1, 'a tolerance is a multiple of the allowance between 1.1 and 3')
    .max(3, 'a tolerance is a multiple of the allowance between 1.1 and 3')
    .refine((n) => Number.isInteger(Math.round(n * 100)) && Math.abs(n * 100 - Math.round(n * 100)) < 1e-9, {
      message: 'a tolerance has at most two decimal places (1.25: 25% above the allowance)',
    }),
]);
export type OveragePolicy = z.output<typeof overagePolicy>;

/** The percentages of an allowance at which the customer is told (usage.threshold_crossed). */
export const thresholdsSchema = z
  .array(
    z
      .number()
      .int('a threshold is a whole percentage')
      .min(1, 'a threshold is a percentage from 1 to 1000')
      .max(1000, 'a threshold is a percentage from 1 to 1000'),
  )
  .max(20, 'at most 20 thresholds')
  .refine((t) => new Set(t).size === t.length, { message: 'must not repeat a threshold' })
  .transform((t) => [...t].sort((a, b) => a - b));

/** Told at 80% and at 100% of each allowance unless a plan (or a customer's deal) says otherwise. */
export const DEFAULT_THRESHOLDS: readonly number[] = [80, 100];

export const featuresSchema = z
  .array(entitlementName)
  .max(100)
  .refine((f) => new Set(f).size === f.length, { message: 'must not repeat a feature' });

export const limitsSchema = safeRecord(
  z.record(entitlementName, z.number().int().min(0).max(1e12).nullable()).refine((l) => Object.keys(l).length <= 100, {
    message: 'at most 100 limits',
  }),
);

export const overageSchema = safeRecord(z.record(entitlementName, overagePolicy));

const entitlementsShape = z.strictObject({
  features: featuresSchema,
  limits: limitsSchema,
  /**
   * Per metered limit (a limit named after a usage metric: an allowance per billing period), what
   * happens past it; a metered limit not named here is `block`. Checked against the metrics and the
   * limits in plans-schemas.ts.
   */
  overage: overageSchema.optional(),
  /** When the customer is told, in percent of each allowance; absent: DEFAULT_THRESHOLDS. */
  thresholds: thresholdsSchema.optional(),
});

/**
 * What a plan grants: feature flags and numeric limits (null: unlimited). `limits.instances` is the
 * activation limit the licenses module enforces; every other limit is carried in licenses for the
 * software to apply.
 */
export const entitlementsSchema = z.preprocess((v, ctx) => {
  if (typeof v === 'object' && v !== null && Object.hasOwn(v, 'seats')) ctx.addIssue({ code: 'custom', path: ['seats'], message: SEATS_REMOVED, input: v });
  return v;
}, entitlementsShape);

export type Entitlements = z.output<typeof entitlementsShape>;

/** A decimal amount of minor units, as Stripe's unit_amount_decimal: "0.05" is a twentieth of a cent. */
export const unitAmountDecimal = z
  .string()
  .regex(/^(0|[1-9]\d{0,11})(\.\d{1,12})?$/, 'a decimal number of minor units (at most 12 decimal places), as a string: "0.05"');

/**
 * What a plan costs, for the local estimate of the period's charges (GET /api/invoices/upcoming with
 * Stripe off): the base price per period and, per usage metric, the price of one unit, in the
 * currency's minor units. With Stripe on, Stripe's prices are the truth and this is not read.
 */
export const localPricingSchema = z.strictObject({
  currency: z.string().regex(/^[a-z]{3}$/, 'a three-letter ISO currency code, lowercase (usd)'),
  /** The base price per billing period, in minor units (4900: 49.00). */
  unit_amount: z.number().int().min(0).max(1e12),
  /** {metric: the price of one unit, in minor units, as a decimal string}. */
  metered: z.record(entitlementName, unitAmountDecimal).default({}),
});
export type LocalPricing = z.output<typeof localPricingSchema>;

/** A plan as the plans module hands it out. */
export interface Plan {
  id: string;
  code: string;
  name: string;
  entitlements: Entitlements;
  stripePriceId: string | null;
  meteredPrices: Record<string, string>;
  /** null: the plan has no local pricing (the estimate then has no amounts to give). */
  localPricing: LocalPricing | null;
  status: 'active' | 'archived';
  createdAt: Date;
  updatedAt: Date;
}
