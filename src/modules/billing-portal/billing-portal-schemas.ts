import { z } from 'zod';
import { obj, timestamp } from '../../http/response-schemas';

/** POST /api/billing/portal-session: where the portal sends the customer's people back to (BILLING_PORTAL_RETURN_URLS). */
export const portalSessionBody = z.strictObject({
  return_url: z.string().min(1, 'must not be empty').max(2048, 'must be at most 2048 characters'),
});

/** The session's URL is a bearer secret for the customer's billing: answered with no-store, never logged or audited. */
export const portalSessionResponse = obj({
  url: z.string(),
  expires_at: timestamp.describe('Open the URL before this (Stripe’s sessions are short-lived); ask for a new one after'),
});
