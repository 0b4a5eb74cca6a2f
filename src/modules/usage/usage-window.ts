/** Stripe meters accept events at most 35 days old and 5 minutes ahead: so does POST /api/usage. */
export const MAX_AGE_MS = 35 * 24 * 3600 * 1000;
export const MAX_AHEAD_MS = 5 * 60 * 1000;
