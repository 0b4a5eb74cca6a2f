import { json } from '../../http/response-schemas';
import {
  createCustomerBody,
  createdCustomerResponse,
  customerJson,
  customerResponse,
  customersResponse,
  listCustomersQuery,
  meResponse,
  updateCustomerBody,
} from './customers-schemas';
import { defineRoute, type HandlersFor } from '../../http/route';
import { idParams } from '../../http/common-schemas';
import { decodeCursor, page } from '../../lib/pagination';
import { UUID_RE } from '../../lib/ids';
import { keyJson } from '../api-keys/api-keys-schemas';
import type { CustomersService } from './customers-service';
import { UnauthorizedError } from '../../errors/app-error';
import type { EffectiveEntitlements } from '../entitlements/entitlement-rules';
import { effectiveJson } from '../entitlements/entitlements-schemas';

/** A customer's deal as GET /api/me shows it (deals.ts `dealFor`). */
export type DealReader = (customerId: string) => Promise<{ plan: { code: string; name: string } | null; effective: EffectiveEntitlements }>;

export function customersRouteSpecs() {
  return {
    postCustomers: defineRoute({
      method: 'post',
      path: '/api/customers',
      auth: 'admin',
      noStore: true,
      summary: 'Create a customer and its first API key (shown this once)',
      request: { body: createCustomerBody },
      responses: { 201: json(createdCustomerResponse, 'Created; `api_key` is shown this once and never again') },
      errors: ['EMAIL_TAKEN'],
      auditAction: 'customer.create',
    }),
    getCustomers: defineRoute({
      method: 'get',
      path: '/api/customers',
      auth: 'admin',
      summary: 'List customers, newest first',
      request: { query: listCustomersQuery },
      responses: { 200: json(customersResponse, 'A page of customers; `next_cursor` fetches the next') },
    }),
    getCustomersById: defineRoute({
      method: 'get',
      path: '/api/customers/:id',
      auth: 'admin',
      summary: 'Get a customer',
      request: { params: idParams },
      responses: { 200: json(customerResponse, 'The customer') },
    }),
    patchCustomersById: defineRoute({
      method: 'patch',
      path: '/api/customers/:id',
      auth: 'admin',
      summary: 'Change a customer’s email or company name',
      request: { params: idParams, body: updateCustomerBody },
      responses: { 200: json(customerResponse, 'The customer as changed') },
      errors: ['EMAIL_TAKEN', 'CUSTOMER_DELETED'],
      auditAction: 'customer.update',
    }),
    deleteCustomersById: defineRoute({
      method: 'delete',
      path: '/api/customers/:id',
      auth: 'admin',
      summary: 'Soft-delete a customer: every key revoked at once, usage and audit kept',
      request: { params: idParams },
      responses: { 200: json(customerResponse, 'The customer, now deleted') },
      auditAction: 'customer.delete',
    }),
    getMe: defineRoute({
      method: 'get',
      path: '/api/me',
      auth: 'customer',
      summary: 'The customer the presented key belongs to',
      responses: { 200: json(meResponse, 'The key’s customer, the key’s id, and the effective entitlements (its plan with its overrides)') },
    }),
  };
}

export function customersHandlers(customers: CustomersService, deals: { dealFor: DealReader }): HandlersFor<ReturnType<typeof customersRouteSpecs>> {
  return {
    postCustomers: async ({ body, ctx }) => {
      const { customer, key, apiKey } = await customers.create(ctx, { email: body.email, companyName: body.company_name });
      return { status: 201, body: { customer: customerJson(customer), api_key: apiKey, key: keyJson(key) } };
    },
    getCustomers: async ({ query }) => {
      const rows = await customers.list({
        status: query.status,
        email: query.email,
        q: query.q || undefined,
        beforeId: decodeCursor(query.cursor, (id) => UUID_RE.test(id)),
        limit: query.limit + 1,
      });
      const { items, nextCursor } = page(rows, query.limit);
      return { status: 200, body: { data: items.map(customerJson), next_cursor: nextCursor } };
    },
    getCustomersById: async ({ params }) => {
      return { status: 200, body: { customer: customerJson(await customers.get(params.id)) } };
    },
    patchCustomersById: async ({ params, body, ctx }) => {
      const updated = await customers.update(ctx, params.id, { email: body.email, companyName: body.company_name });
      return { status: 200, body: { customer: customerJson(updated) } };
    },
    deleteCustomersById: async ({ params, ctx }) => {
      return { status: 200, body: { customer: customerJson(await customers.remove(ctx, params.id)) } };
    },
    getMe: async ({ principal }) => {
      const customer = await customers.get(principal.customerId);
      // A deletion racing this request: the key is already revoked, so answer as for any bad key.
      if (customer.status !== 'active') throw new UnauthorizedError();
      const deal = await deals.dealFor(customer.id);
      return {
        status: 200,
        body: {
          customer: customerJson(customer),
          key: { id: principal.keyId },
          plan: deal.plan ? { code: deal.plan.code, name: deal.plan.name } : null,
          entitlements: effectiveJson(deal.effective),
        },
      };
    },
  };
}
