import { responses } from '../../http/response-schemas';
import { defineRoute } from '../../http/route';
import { idParams } from '../../http/common-schemas';
import { decodeCursor, page } from '../../lib/pagination';
import { UUID_RE } from '../../lib/ids';
import { keyJson } from '../api-keys/api-keys-schemas';
import type { CustomersService } from './customers-service';
import { createCustomerBody, customerJson, listCustomersQuery, updateCustomerBody } from './customers-schemas';
import { UnauthorizedError } from '../../errors/app-error';

export function customersRoutes(customers: CustomersService) {
  return [
    defineRoute({
      method: 'post',
      path: '/api/customers',
      auth: 'admin',
      summary: 'Create a customer and its first API key (shown this once)',
      response: responses.createdCustomer,
      auditAction: 'customer.create',
      body: createCustomerBody,
      async handle({ body, ctx }, res) {
        const { customer, key, apiKey } = await customers.create(ctx, { email: body.email, companyName: body.company_name });
        res.status(201).json({ customer: customerJson(customer), api_key: apiKey, key: keyJson(key) });
      },
    }),
    defineRoute({
      method: 'get',
      path: '/api/customers',
      auth: 'admin',
      summary: 'List customers, newest first',
      response: responses.customers,
      query: listCustomersQuery,
      async handle({ query }, res) {
        const rows = await customers.list({
          status: query.status,
          email: query.email,
          beforeId: decodeCursor(query.cursor, (id) => UUID_RE.test(id)),
          limit: query.limit + 1,
        });
        const { items, nextCursor } = page(rows, query.limit);
        res.json({ data: items.map(customerJson), next_cursor: nextCursor });
      },
    }),
    defineRoute({
      method: 'get',
      path: '/api/customers/:id',
      auth: 'admin',
      summary: 'Get a customer',
      response: responses.customer,
      params: idParams,
      async handle({ params }, res) {
        res.json({ customer: customerJson(await customers.get(params.id)) });
      },
    }),
    defineRoute({
      method: 'patch',
      path: '/api/customers/:id',
      auth: 'admin',
      summary: 'Change a customer’s email or company name',
      response: responses.customer,
      auditAction: 'customer.update',
      params: idParams,
      body: updateCustomerBody,
      async handle({ params, body, ctx }, res) {
        const updated = await customers.update(ctx, params.id, { email: body.email, companyName: body.company_name });
        res.json({ customer: customerJson(updated) });
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/api/customers/:id',
      auth: 'admin',
      summary: 'Soft-delete a customer: every key revoked at once, usage and audit kept',
      response: responses.customer,
      auditAction: 'customer.delete',
      params: idParams,
      async handle({ params, ctx }, res) {
        res.json({ customer: customerJson(await customers.remove(ctx, params.id)) });
      },
    }),
    defineRoute({
      method: 'get',
      path: '/api/me',
      auth: 'customer',
      summary: 'The customer the presented key belongs to',
      response: responses.me,
      async handle({ principal }, res) {
        const customer = await customers.get(principal.customerId);
        // A deletion racing this request: the key is already revoked, so answer as for any bad key.
        if (customer.status !== 'active') throw new UnauthorizedError();
        res.json({ customer: customerJson(customer), key: { id: principal.keyId } });
      },
    }),
  ];
}
