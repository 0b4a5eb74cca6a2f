import { responses } from '../../http/response-schemas';
import { defineRoute } from '../../http/route';
import type { PlansService } from './plans-service';
import { planJson, planParams, planSchemas } from './plans-schemas';

export function plansRoutes(plans: PlansService, schemas: ReturnType<typeof planSchemas>) {
  return [
    defineRoute({
      method: 'post',
      path: '/api/plans',
      auth: 'admin',
      summary: 'Create a plan: code, name, entitlements, Stripe prices',
      response: responses.plan,
      auditAction: 'plan.create',
      body: schemas.create,
      async handle({ body, ctx }, res) {
        const plan = await plans.create(ctx, {
          code: body.code,
          name: body.name,
          entitlements: body.entitlements,
          stripePriceId: body.stripe_price_id,
          meteredPrices: body.metered_prices,
        });
        res.status(201).json({ plan: planJson(plan) });
      },
    }),
    defineRoute({
      method: 'get',
      path: '/api/plans',
      auth: 'admin',
      summary: 'List plans by code',
      response: responses.plans,
      query: schemas.list,
      async handle({ query }, res) {
        res.json({ data: (await plans.list(query.status)).map(planJson) });
      },
    }),
    defineRoute({
      method: 'get',
      path: '/api/plans/:code',
      auth: 'admin',
      summary: 'Get a plan',
      response: responses.plan,
      params: planParams,
      async handle({ params }, res) {
        res.json({ plan: planJson(await plans.get(params.code)) });
      },
    }),
    defineRoute({
      method: 'patch',
      path: '/api/plans/:code',
      auth: 'admin',
      summary: 'Change a plan, or archive it (status "archived")',
      response: responses.plan,
      auditAction: 'plan.update',
      params: planParams,
      body: schemas.update,
      async handle({ params, body, ctx }, res) {
        const plan = await plans.update(ctx, params.code, {
          name: body.name,
          entitlements: body.entitlements,
          stripePriceId: body.stripe_price_id,
          meteredPrices: body.metered_prices,
          status: body.status,
        });
        res.json({ plan: planJson(plan) });
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/api/plans/:code',
      auth: 'admin',
      summary: 'Delete a plan no subscription uses (409 PLAN_IN_USE otherwise: archive it)',
      response: responses.noContent,
      auditAction: 'plan.delete',
      params: planParams,
      async handle({ params, ctx }, res) {
        await plans.remove(ctx, params.code);
        res.status(204).end();
      },
    }),
  ];
}
