import type { Knex } from 'knex';
import { AppError, ValidationError } from '../../errors/app-error';
import type { ActorContext } from '../../lib/request-context';
import type { StripePort } from '../../stripe/stripe-port';
import { stripeReadFailure } from '../../stripe/stripe-read-failure';
import type { AuditService } from '../audit/audit-service';
import type { CustomersService } from '../customers/customers-service';
import { checkReturnUrl, type ReturnUrlRule } from './return-urls';

/**
 * Stripe gives a portal session no expiry of its own: its URL is short-lived and expires unless it
 * is visited soon. We promise five minutes from Stripe's `created`, so an instance opens it at once
 * or asks for a new one (docs/STRIPE.md, Customer portal).
 */
export const PORTAL_SESSION_TTL_MS = 5 * 60_000;

export interface BillingPortalDeps {
  db: Knex;
  customers: Pick<CustomersService, 'findById'>;
  stripe: StripePort;
  audit: AuditService;
  /** BILLING_PORTAL_RETURN_URLS: empty refuses every return_url. */
  returnUrls: readonly ReturnUrlRule[];
  /** BILLING_PORTAL_CONFIGURATION: unset, Stripe's default configuration. */
  configuration?: string;
}

/** Only the return URL's origin is kept: its path or query may carry anything, the session URL never is. */
function originOf(candidate: string): string | null {
  try {
    const u = new URL(candidate);
    return u.protocol === 'https:' || u.protocol === 'http:' ? u.origin.slice(0, 300) : null;
  } catch {
    return null;
  }
}

/**
 * A Stripe customer portal session for the customer a key belongs to. The checks run in a fixed
 * order: Stripe off (nothing the caller sends can change it), the customer's Stripe link (read from
 * our own row), then the return URL, all before the one Stripe call. None of them says anything
 * about another customer. Every attempt is audited (`billing.portal_session`) with its outcome and
 * the return URL's origin; the session URL, a bearer secret for the customer's billing, is handed
 * back and nothing else: not in the audit row, not in a log line, not in an error.
 */
export function createBillingPortalService(deps: BillingPortalDeps) {
  const { db, customers, stripe, audit } = deps;

  async function attempt(customerId: string, returnUrl: string): Promise<{ url: string; expiresAt: Date }> {
    if (!stripe.enabled) throw new AppError('STRIPE_DISABLED', 'Stripe is off here: there is no customer portal');
    const customer = await customers.findById(db, customerId);
    if (!customer?.stripeCustomerId) {
      throw new AppError('CUSTOMER_NOT_LINKED', 'This customer has no Stripe customer yet: its portal opens once it has a Stripe subscription');
    }
    const checked = checkReturnUrl(deps.returnUrls, returnUrl);
    if ('refused' in checked) throw new ValidationError('The return_url is not allowed', [{ path: 'return_url', message: checked.refused }]);
    try {
      const session = await stripe.createPortalSession({
        stripeCustomerId: customer.stripeCustomerId,
        returnUrl: checked.url,
        ...(deps.configuration ? { configuration: deps.configuration } : {}),
      });
      return { url: session.url, expiresAt: new Date(session.created.getTime() + PORTAL_SESSION_TTL_MS) };
    } catch (err) {
      throw stripeReadFailure(err, 'the portal session');
    }
  }

  return {
    async createSession(ctx: ActorContext, customerId: string, returnUrl: string): Promise<{ url: string; expiresAt: Date }> {
      const details = { return_origin: originOf(returnUrl), configuration: deps.configuration ?? null };
      try {
        const session = await attempt(customerId, returnUrl);
        await audit.recordDetached(ctx, { action: 'billing.portal_session', outcome: 'success', targetType: 'customer', targetId: customerId, details });
        return session;
      } catch (err) {
        const code = err instanceof AppError ? err.code : 'INTERNAL_ERROR';
        await audit.recordDetached(ctx, {
          action: 'billing.portal_session',
          // A return URL the rules refuse is a policy decision (denied); the rest failed.
          outcome: code === 'VALIDATION_FAILED' ? 'denied' : 'failure',
          targetType: 'customer',
          targetId: customerId,
          details: { ...details, code },
        });
        throw err;
      }
    },
  };
}

export type BillingPortalService = ReturnType<typeof createBillingPortalService>;
