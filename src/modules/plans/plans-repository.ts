import type { Knex } from 'knex';
import { jsonb, type PlanRow } from '../../db/tables';
import type { Plan } from './plan-types';

export const PLAN_CODE_UNIQUE = 'plans_code_unique';

const toPlan = (r: PlanRow): Plan => ({
  id: r.id,
  code: r.code,
  name: r.name,
  entitlements: r.entitlements,
  stripePriceId: r.stripe_price_id,
  meteredPrices: r.metered_prices,
  localPricing: r.local_pricing ?? null,
  status: r.status,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export type PlanChanges = Partial<Pick<Plan, 'name' | 'entitlements' | 'stripePriceId' | 'meteredPrices' | 'localPricing' | 'status'>>;

export function createPlansRepository() {
  return {
    async insert(db: Knex, p: Omit<Plan, 'createdAt' | 'updatedAt' | 'status'>): Promise<Plan> {
      const [row] = await db('plans')
        .insert({
          id: p.id,
          code: p.code,
          name: p.name,
          entitlements: jsonb(p.entitlements),
          stripe_price_id: p.stripePriceId,
          metered_prices: jsonb(p.meteredPrices),
          local_pricing: p.localPricing ? jsonb(p.localPricing) : null,
        })
        .returning('*');
      return toPlan(row!);
    },

    async findByCode(db: Knex, code: string, opts: { forUpdate?: boolean } = {}): Promise<Plan | null> {
      const q = db('plans').where({ code }).first();
      if (opts.forUpdate) q.forUpdate();
      const row = await q;
      return row ? toPlan(row) : null;
    },

    async findById(db: Knex, id: string): Promise<Plan | null> {
      const row = await db('plans').where({ id }).first();
      return row ? toPlan(row) : null;
    },

    async list(db: Knex, status?: 'active' | 'archived'): Promise<Plan[]> {
      const q = db('plans').select('*').orderBy('code');
      if (status) q.where({ status });
      return (await q).map(toPlan);
    },

    async update(db: Knex, id: string, c: PlanChanges): Promise<Plan> {
      const [row] = await db('plans')
        .where({ id })
        .update({
          ...(c.name !== undefined ? { name: c.name } : {}),
          ...(c.entitlements !== undefined ? { entitlements: jsonb(c.entitlements) } : {}),
          ...(c.stripePriceId !== undefined ? { stripe_price_id: c.stripePriceId } : {}),
          ...(c.meteredPrices !== undefined ? { metered_prices: jsonb(c.meteredPrices) } : {}),
          ...(c.localPricing !== undefined ? { local_pricing: c.localPricing ? jsonb(c.localPricing) : null } : {}),
          ...(c.status !== undefined ? { status: c.status } : {}),
          updated_at: db.fn.now(),
        })
        .returning('*');
      return toPlan(row!);
    },

    async countSubscriptions(db: Knex, planId: string): Promise<number> {
      const row = await db('subscriptions').where({ plan_id: planId }).count<{ n: string }>({ n: '*' }).first();
      return Number(row?.n ?? 0);
    },

    async remove(db: Knex, id: string): Promise<void> {
      await db('plans').where({ id }).delete();
    },
  };
}

export type PlansRepository = ReturnType<typeof createPlansRepository>;
