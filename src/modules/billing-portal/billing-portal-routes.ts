import { json } from '../../http/response-schemas';
import { defineRoute, type HandlersFor } from '../../http/route';
import { portalSessionBody, portalSessionResponse } from './billing-portal-schemas';
import type { BillingPortalService } from './billing-portal-service';

export function billingPortalRouteSpecs() {
  return {
    postBillingPortalSession: defineRoute({
      method: 'post',
      path: '/api/billing/portal-session',
      auth: 'customer',
      summary:
        'A Stripe customer portal session for the key’s customer: open its URL at once (it is short-lived), then the portal sends the person back to return_url',
      description:
        'return_url must be allowed by BILLING_PORTAL_RETURN_URLS (an origin, or a URL prefix at a path segment boundary); ' +
        'what goes to Stripe is its normalised form. 409 STRIPE_DISABLED with Stripe off, 409 CUSTOMER_NOT_LINKED for a customer with no ' +
        'Stripe customer; 503 (Retry-After) when Stripe does not answer, 502 when it refuses. The URL is a bearer secret: no-store, never logged.',
      request: { body: portalSessionBody },
      responses: { 201: json(portalSessionResponse, 'The session: its URL and until when to open it') },
      errors: ['STRIPE_DISABLED', 'CUSTOMER_NOT_LINKED', 'BAD_GATEWAY'],
      // Each request is a Stripe call: the general customer limit (RATE_LIMIT_API) bounds it.
      noStore: true,
    }),
  };
}

export function billingPortalHandlers(portal: BillingPortalService): HandlersFor<ReturnType<typeof billingPortalRouteSpecs>> {
  return {
    postBillingPortalSession: async ({ body, principal, ctx }) => {
      const session = await portal.createSession(ctx, principal.customerId, body.return_url);
      return { status: 201, body: { url: session.url, expires_at: session.expiresAt.toISOString() } };
    },
  };
}
