import Stripe from 'stripe';
import type { Config } from '../config';
import { disabledStripe, MeterEventInput, StripeCallError, StripePort } from './stripe-port';

/** stripe-node pins this API version; we pin it too so an upgrade is a deliberate change. */
export const STRIPE_API_VERSION = '2026-10-28.endive';

/** host/port/protocol for stripe-node from STRIPE_API_BASE (a fake server, stripe-mock, a proxy). */
export function stripeHostOptions(apiBase: string | undefined): { host?: string; port?: number; protocol?: 'http' | 'https' } {
  if (!apiBase) return {};
  const u = new URL(apiBase);
  const protocol = u.protocol === 'http:' ? 'http' : 'https';
  return { host: u.hostname, port: u.port ? Number(u.port) : protocol === 'http' ? 80 : 443, protocol };
}

export function classifyStripeError(err: unknown): StripeCallError {
  if (err instanceof StripeCallError) return err;
  const e = err as { type?: string; statusCode?: number; code?: string; message?: string };
  const status = e.statusCode;
  const message = `${e.type ?? 'Error'}${status ? ` ${status}` : ''}: ${e.message ?? String(err)}`.slice(0, 500);
  const retryable =
    e.type === 'StripeConnectionError' ||
    e.type === 'StripeAPIError' ||
    e.type === 'StripeRateLimitError' ||
    status === undefined ||
    status === 409 ||
    status === 429 ||
    status >= 500;
  return new StripeCallError(message, retryable, status, e.code);
}

export function createStripeClient(config: Pick<Config, 'stripe'>): StripePort {
  const { secretKey, apiBase, timeoutMs } = config.stripe;
  if (!secretKey) return disabledStripe;
  const stripe = new Stripe(secretKey, {
    apiVersion: STRIPE_API_VERSION,
    timeout: timeoutMs,
    // The usage forwarder owns retries (with backoff that survives restarts); other writes retry here.
    maxNetworkRetries: 2,
    appInfo: { name: 'billing-service' },
    telemetry: false,
    ...stripeHostOptions(apiBase),
  });
  return {
    enabled: true,
    async sendMeterEvent(input: MeterEventInput) {
      try {
        await stripe.billing.meterEvents.create(
          {
            event_name: input.eventName,
            identifier: input.identifier,
            timestamp: Math.floor(input.occurredAt.getTime() / 1000),
            payload: { stripe_customer_id: input.stripeCustomerId, value: input.value },
          },
          { idempotencyKey: `meter-event-${input.identifier}`, maxNetworkRetries: 0 },
        );
      } catch (err) {
        throw classifyStripeError(err);
      }
    },
  };
}
