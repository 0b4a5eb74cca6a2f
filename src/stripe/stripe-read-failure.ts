import { AppError, ServiceUnavailableError } from '../errors/app-error';
import { StripeCallError } from './stripe-port';

/**
 * A failed Stripe call made to answer a customer's request (a portal session, an invoice preview),
 * as the customer sees it: never a 500. Stripe not answering in time, a connection failure, a 5xx, a
 * 429 or a 409 lock: 503 with Retry-After (the same request later is likely to work). A refusal
 * Stripe will repeat (a 400, 401, 403 or 404 it did not expect): 502, which no retry fixes. The
 * message names the status and Stripe's code only: Stripe's own text can quote the request.
 */
export function stripeReadFailure(err: unknown, what: string): unknown {
  if (!(err instanceof StripeCallError)) return err;
  if (err.retryable) {
    const why = err.status === undefined ? 'did not answer in time' : `failed (${err.status})`;
    return new ServiceUnavailableError(`Stripe ${why} for ${what}; retry shortly`, { cause: err, retryAfterSeconds: err.status === 429 ? 10 : 5 });
  }
  return new AppError('BAD_GATEWAY', `Stripe refused ${what} (${err.status ?? 'no status'}${err.stripeCode ? `, ${err.stripeCode}` : ''})`, undefined, {
    cause: err,
  });
}
