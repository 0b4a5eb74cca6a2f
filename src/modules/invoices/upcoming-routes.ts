import { json } from '../../http/response-schemas';
import { defineRoute, type HandlersFor } from '../../http/route';
import { upcomingInvoiceResponse } from './invoices-schemas';
import type { UpcomingInvoices } from './upcoming-invoice';

/**
 * Its own group, registered before the invoice routes: `/api/invoices/upcoming` must be matched
 * before `/api/invoices/:id` would take "upcoming" for an id.
 */
export function upcomingInvoiceRouteSpecs() {
  return {
    getInvoicesUpcoming: defineRoute({
      method: 'get',
      path: '/api/invoices/upcoming',
      auth: 'customer',
      summary: 'The charges the current period will bring so far: Stripe’s invoice preview, or an estimate from the plan’s local pricing',
      description:
        'With Stripe on and a subscription Stripe holds: Stripe’s preview (estimate false), kept per customer for UPCOMING_INVOICE_CACHE; ' +
        '503 (Retry-After) when Stripe does not answer, 502 when it refuses. Otherwise an estimate (estimate true) from the plan’s ' +
        'local_pricing and the period’s usage. 404 when the customer has no current subscription.',
      responses: { 200: json(upcomingInvoiceResponse, 'The period’s charges as of computed_at') },
      errors: ['NOT_FOUND', 'BAD_GATEWAY'],
    }),
  };
}

export function upcomingInvoiceHandlers(upcoming: UpcomingInvoices): HandlersFor<ReturnType<typeof upcomingInvoiceRouteSpecs>> {
  return {
    getInvoicesUpcoming: async ({ principal }) => ({ status: 200, body: await upcoming.upcoming(principal.customerId) }),
  };
}
