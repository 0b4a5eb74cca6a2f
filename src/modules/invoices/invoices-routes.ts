import { idParams } from '../../http/common-schemas';
import { json } from '../../http/response-schemas';
import { defineRoute, type HandlersFor } from '../../http/route';
import {
  adminInvoicesQuery,
  customerInvoicesQuery,
  invoiceCursor,
  invoiceJson,
  invoiceParams,
  invoiceRef,
  invoiceResponse,
  invoicesResponse,
} from './invoices-schemas';
import type { Invoice } from './invoice-types';
import type { InvoicesService } from './invoices-service';

/*
 * GET /api/invoices/:id must come after GET /api/invoices/upcoming in the route table: express gives
 * a request to the first route whose path matches, and this one's handler never passes it on.
 */
export function invoicesRouteSpecs() {
  return {
    getInvoices: defineRoute({
      method: 'get',
      path: '/api/invoices',
      auth: 'customer',
      summary: 'The calling customer’s invoices, newest first (drafts are never shown)',
      request: { query: customerInvoicesQuery },
      responses: { 200: json(invoicesResponse, 'A page of invoices; `next_cursor` fetches the next') },
    }),
    getInvoicesById: defineRoute({
      method: 'get',
      path: '/api/invoices/:id',
      auth: 'customer',
      summary: 'One of the calling customer’s invoices, by our id or Stripe’s (in_…)',
      request: { params: invoiceParams },
      responses: { 200: json(invoiceResponse, 'The invoice (another customer’s, a draft, or a malformed id is a 404 like a missing one)') },
    }),
    getCustomersByIdInvoices: defineRoute({
      method: 'get',
      path: '/api/customers/:id/invoices',
      auth: 'admin',
      summary: 'A customer’s invoices, newest first, drafts included (a deleted customer’s too)',
      request: { params: idParams, query: adminInvoicesQuery },
      responses: { 200: json(invoicesResponse, 'A page of invoices; `next_cursor` fetches the next') },
    }),
  };
}

const pageJson = ({ items, more }: { items: Invoice[]; more: boolean }) => ({
  status: 200 as const,
  body: { data: items.map(invoiceJson), next_cursor: more && items.length ? invoiceCursor.encode(items[items.length - 1]!) : null },
});

export function invoicesHandlers(invoices: InvoicesService): HandlersFor<ReturnType<typeof invoicesRouteSpecs>> {
  return {
    getInvoices: async ({ principal, query }) =>
      pageJson(await invoices.listForCustomer(principal.customerId, { status: query.status, before: invoiceCursor.decode(query.cursor), limit: query.limit })),
    getInvoicesById: async ({ principal, params }) => ({
      status: 200,
      body: { invoice: invoiceJson(await invoices.getForCustomer(principal.customerId, invoiceRef(params.id))) },
    }),
    getCustomersByIdInvoices: async ({ params, query }) =>
      pageJson(await invoices.listForAdmin(params.id, { status: query.status, before: invoiceCursor.decode(query.cursor), limit: query.limit })),
  };
}
