import { json } from '../../http/response-schemas';
import { planJson, planParams, planResponse, planSchemas, plansResponse } from './plans-schemas';
import { defineRoute, type HandlersFor } from '../../http/route';
import type { PlansService } from './plans-service';

export function plansRouteSpecs(schemas: ReturnType<typeof planSchemas>) {
  return {
    postPlans: defineRoute({
      method: 'post',
      path: '/api/plans',
      auth: 'admin',
      summary: 'Create a plan: code, name, entitlements, Stripe prices',
      request: { body: schemas.create },
      responses: { 201: json(planResponse, 'The plan as created') },
      errors: ['PLAN_CODE_TAKEN'],
      auditAction: 'plan.create',
    }),
    getPlans: defineRoute({
      method: 'get',
      path: '/api/plans',
      auth: 'admin',
      summary: 'List plans by code',
      request: { query: schemas.list },
      responses: { 200: json(plansResponse, 'The plans, by code') },
    }),
    getPlansByCode: defineRoute({
      method: 'get',
      path: '/api/plans/:code',
      auth: 'admin',
      summary: 'Get a plan',
      request: { params: planParams },
      responses: { 200: json(planResponse, 'The plan') },
    }),
    patchPlansByCode: defineRoute({
      method: 'patch',
      path: '/api/plans/:code',
      auth: 'admin',
      summary: 'Change a plan, or archive it (status "archived")',
      request: { params: planParams, body: schemas.update },
      responses: { 200: json(planResponse, 'The plan as changed') },
      auditAction: 'plan.update',
    }),
    deletePlansByCode: defineRoute({
      method: 'delete',
      path: '/api/plans/:code',
      auth: 'admin',
      summary: 'Delete a plan no subscription uses (409 PLAN_IN_USE otherwise: archive it)',
      request: { params: planParams },
      responses: { 204: { description: 'Deleted' } },
      errors: ['PLAN_IN_USE'],
      auditAction: 'plan.delete',
    }),
  };
}

export function plansHandlers(plans: PlansService): HandlersFor<ReturnType<typeof plansRouteSpecs>> {
  return {
    postPlans: async ({ body, ctx }) => {
      const plan = await plans.create(ctx, {
        code: body.code,
        name: body.name,
        entitlements: body.entitlements,
        stripePriceId: body.stripe_price_id,
        meteredPrices: body.metered_prices,
        localPricing: body.local_pricing,
      });
      return { status: 201, body: { plan: planJson(plan) } };
    },
    getPlans: async ({ query }) => ({ status: 200, body: { data: (await plans.list(query.status)).map(planJson) } }),
    getPlansByCode: async ({ params }) => ({ status: 200, body: { plan: planJson(await plans.get(params.code)) } }),
    patchPlansByCode: async ({ params, body, ctx }) => {
      const plan = await plans.update(ctx, params.code, {
        name: body.name,
        entitlements: body.entitlements,
        stripePriceId: body.stripe_price_id,
        meteredPrices: body.metered_prices,
        localPricing: body.local_pricing,
        status: body.status,
      });
      return { status: 200, body: { plan: planJson(plan) } };
    },
    deletePlansByCode: async ({ params, ctx }) => {
      await plans.remove(ctx, params.code);
      return { status: 204 };
    },
  };
}
