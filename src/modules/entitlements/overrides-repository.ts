import type { Knex } from 'knex';
import { jsonb, type EntitlementOverridesRow } from '../../db/tables';
import type { OverrideTerms, Overrides } from './entitlement-rules';

const toOverrides = (r: EntitlementOverridesRow): Overrides => ({
  customerId: r.customer_id,
  terms: r.terms,
  note: r.note,
  expiresAt: r.expires_at,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export interface OverridesToStore {
  terms: OverrideTerms;
  note: string | null;
  expiresAt: Date | null;
}

export function createOverridesRepository() {
  return {
    async find(db: Knex, customerId: string): Promise<Overrides | null> {
      const row = await db('customer_entitlement_overrides').where({ customer_id: customerId }).first();
      return row ? toOverrides(row) : null;
    },

    /** Several customers' overrides at once (the threshold watch's cache misses). */
    async findMany(db: Knex, customerIds: readonly string[]): Promise<Map<string, Overrides>> {
      if (customerIds.length === 0) return new Map();
      const rows = await db('customer_entitlement_overrides').whereIn('customer_id', [...customerIds]);
      return new Map(rows.map((r) => [r.customer_id, toOverrides(r)]));
    },

    /** Replaces the customer's overrides (a new end is announced again when it comes). */
    async upsert(db: Knex, customerId: string, o: OverridesToStore): Promise<{ previous: Overrides | null; stored: Overrides }> {
      const previous = await db('customer_entitlement_overrides').where({ customer_id: customerId }).forUpdate().first();
      const [row] = await db('customer_entitlement_overrides')
        .insert({ customer_id: customerId, terms: jsonb(o.terms), note: o.note, expires_at: o.expiresAt, expiry_announced_at: null })
        .onConflict('customer_id')
        .merge({ terms: jsonb(o.terms), note: o.note, expires_at: o.expiresAt, expiry_announced_at: null, updated_at: db.fn.now() })
        .returning('*');
      return { previous: previous ? toOverrides(previous) : null, stored: toOverrides(row!) };
    },

    /** Removes them; the overrides that were there, or null. */
    async remove(db: Knex, customerId: string): Promise<Overrides | null> {
      const [row] = await db('customer_entitlement_overrides').where({ customer_id: customerId }).delete().returning('*');
      return row ? toOverrides(row) : null;
    },

    /**
     * Overrides whose end has passed and was not yet announced, oldest end first, locked (SKIP LOCKED:
     * two instances running the expiry job take different rows).
     */
    async claimExpired(db: Knex, now: Date, limit: number): Promise<Overrides[]> {
      const rows = await db('customer_entitlement_overrides')
        .whereNotNull('expires_at')
        .whereNull('expiry_announced_at')
        .where('expires_at', '<=', now)
        .orderBy('expires_at')
        .limit(limit)
        .forUpdate()
        .skipLocked();
      return rows.map(toOverrides);
    },

    async markAnnounced(db: Knex, customerId: string, at: Date): Promise<void> {
      await db('customer_entitlement_overrides').where({ customer_id: customerId }).update({ expiry_announced_at: at });
    },
  };
}

export type OverridesRepository = ReturnType<typeof createOverridesRepository>;
