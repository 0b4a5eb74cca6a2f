import { idParams } from '../../http/common-schemas';
import { json } from '../../http/response-schemas';
import { defineRoute, type HandlersFor } from '../../http/route';
import { entitlementsJson, entitlementsResponse, type overrideSchemas } from './entitlements-schemas';
import type { DealView, EntitlementsService } from './entitlements-service';

export function entitlementsRouteSpecs(schemas: ReturnType<typeof overrideSchemas>) {
  return {
    getCustomersByIdEntitlements: defineRoute({
      method: 'get',
      path: '/api/customers/:id/entitlements',
      auth: 'admin',
      summary: 'A customer’s deal: its plan, its overrides, what it is entitled to now, and where each metered limit stands this period',
      request: { params: idParams },
      responses: { 200: json(entitlementsResponse, 'The deal (a deleted customer’s too)') },
    }),
    putCustomersByIdEntitlements: defineRoute({
      method: 'put',
      path: '/api/customers/:id/entitlements',
      auth: 'admin',
      summary: 'Replace a customer’s overrides of its plan (features added and removed, limits, instances, overage, thresholds), optionally until a date',
      request: { params: idParams, body: schemas.put },
      responses: { 200: json(entitlementsResponse, 'The deal with the new overrides') },
      auditAction: 'customer.entitlements_update',
    }),
    deleteCustomersByIdEntitlements: defineRoute({
      method: 'delete',
      path: '/api/customers/:id/entitlements',
      auth: 'admin',
      summary: 'Clear a customer’s overrides: its plan alone from now on (404 when it has none)',
      request: { params: idParams },
      responses: { 200: json(entitlementsResponse, 'The deal without overrides') },
      // A deleted customer: 422 at `id`.
      errors: ['VALIDATION_FAILED'],
      auditAction: 'customer.entitlements_clear',
    }),
  };
}

const reply = (v: DealView) => ({ status: 200 as const, body: entitlementsJson(v.deal, v.metered) });

export function entitlementsHandlers(entitlements: EntitlementsService): HandlersFor<ReturnType<typeof entitlementsRouteSpecs>> {
  return {
    getCustomersByIdEntitlements: async ({ params }) => reply(await entitlements.get(params.id)),
    putCustomersByIdEntitlements: async ({ params, body, ctx }) =>
      reply(
        await entitlements.put(ctx, params.id, {
          terms: {
            features: body.features,
            limits: body.limits,
            ...(body.instances !== undefined ? { instances: body.instances } : {}),
            overage: body.overage ?? {},
            ...(body.thresholds !== undefined ? { thresholds: body.thresholds } : {}),
          },
          note: body.note ?? null,
          expiresAt: body.expires_at ?? null,
        }),
      ),
    deleteCustomersByIdEntitlements: async ({ params, ctx }) => reply(await entitlements.clear(ctx, params.id)),
  };
}
