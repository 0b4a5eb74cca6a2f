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

const entitlementsShape = z.strictObject({
  features: z
    .array(entitlementName)
    .max(100)
    .refine((f) => new Set(f).size === f.length, { message: 'must not repeat a feature' }),
  limits: safeRecord(
    z.record(entitlementName, z.number().int().min(0).max(1e12).nullable()).refine((l) => Object.keys(l).length <= 100, {
      message: 'at most 100 limits',
    }),
  ),
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

/** A plan as the plans module hands it out. */
export interface Plan {
  id: string;
  code: string;
  name: string;
  entitlements: Entitlements;
  stripePriceId: string | null;
  meteredPrices: Record<string, string>;
  status: 'active' | 'archived';
  createdAt: Date;
  updatedAt: Date;
}
