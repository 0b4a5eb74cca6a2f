import type { Knex } from 'knex';
import { isUniqueViolation } from '../../db/db-errors';
import { AppError, NotFoundError } from '../../errors/app-error';
import { uuidv7 } from '../../lib/ids';
import type { ActorContext } from '../../lib/request-context';
import type { AuditService } from '../audit/audit-service';
import { PLAN_CODE_UNIQUE, type PlanChanges, type PlansRepository } from './plans-repository';
import type { Entitlements, LocalPricing, Plan } from './plan-types';

export interface NewPlan {
  code: string;
  name: string;
  entitlements: Entitlements;
  stripePriceId?: string;
  meteredPrices?: Record<string, string>;
  localPricing?: LocalPricing | null;
}

export function createPlansService(deps: { db: Knex; repo: PlansRepository; audit: AuditService }) {
  const { db, repo, audit } = deps;

  async function get(code: string): Promise<Plan> {
    const plan = await repo.findByCode(db, code);
    if (!plan) throw new NotFoundError('Plan');
    return plan;
  }

  return {
    get,
    list: (status?: 'active' | 'archived') => repo.list(db, status),

    /** For other modules, in the caller's Knex or transaction. */
    findByCode: (trx: Knex, code: string): Promise<Plan | null> => repo.findByCode(trx, code),
    /** Every plan, archived too, by code; in the caller's Knex or transaction. */
    listAll: (trx: Knex): Promise<Plan[]> => repo.list(trx),

    async create(ctx: ActorContext, p: NewPlan): Promise<Plan> {
      try {
        return await db.transaction(async (trx) => {
          const plan = await repo.insert(trx, {
            id: uuidv7(),
            code: p.code,
            name: p.name,
            entitlements: p.entitlements,
            stripePriceId: p.stripePriceId ?? null,
            meteredPrices: p.meteredPrices ?? {},
            localPricing: p.localPricing ?? null,
          });
          await audit.record(trx, ctx, { action: 'plan.create', outcome: 'success', targetType: 'plan', targetId: plan.id, details: { code: plan.code } });
          return plan;
        });
      } catch (err) {
        if (isUniqueViolation(err, PLAN_CODE_UNIQUE)) throw new AppError('PLAN_CODE_TAKEN', `A plan with code "${p.code}" already exists`);
        throw err;
      }
    },

    async update(ctx: ActorContext, code: string, changes: PlanChanges): Promise<Plan> {
      return db.transaction(async (trx) => {
        const plan = await repo.findByCode(trx, code, { forUpdate: true });
        if (!plan) throw new NotFoundError('Plan');
        const updated = await repo.update(trx, plan.id, changes);
        await audit.record(trx, ctx, {
          action: 'plan.update',
          outcome: 'success',
          targetType: 'plan',
          targetId: plan.id,
          details: {
            code,
            fields: Object.entries(changes)
              .filter(([, v]) => v !== undefined)
              .map(([k]) => k),
          },
        });
        return updated;
      });
    },

    /** Only a plan no subscription ever used can go; one in use can only be archived. */
    async remove(ctx: ActorContext, code: string): Promise<void> {
      await db.transaction(async (trx) => {
        const plan = await repo.findByCode(trx, code, { forUpdate: true });
        if (!plan) throw new NotFoundError('Plan');
        if ((await repo.countSubscriptions(trx, plan.id)) > 0) {
          throw new AppError('PLAN_IN_USE', 'Subscriptions use this plan: archive it instead (PATCH status "archived")');
        }
        await repo.remove(trx, plan.id);
        await audit.record(trx, ctx, { action: 'plan.delete', outcome: 'success', targetType: 'plan', targetId: plan.id, details: { code } });
      });
    },
  };
}

export type PlansService = ReturnType<typeof createPlansService>;
