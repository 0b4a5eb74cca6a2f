import type { Knex } from 'knex';
import type { Logger } from 'pino';
import Stripe from 'stripe';
import { AppError } from '../../errors/app-error';
import type { ActorContext } from '../../lib/request-context';
import type { StripeSubscriptionState } from '../../stripe/stripe-port';
import type { StripePort } from '../../stripe/stripe-port';
import type { AuditService } from '../audit/audit-service';
import type { CustomersRepository } from '../customers/customers-repository';
import type { SubscriptionsService } from '../subscriptions/subscriptions-service';
import type { EventHeader, StripeEventsRepository } from './stripe-events-repository';

/** Events that change a subscription, and where each keeps the subscription's id. */
const SUBSCRIPTION_EVENTS = new Set([
  'customer.subscription.created',
  'customer.subscription.updated',
  'customer.subscription.deleted',
  'customer.subscription.paused',
  'customer.subscription.resumed',
  'customer.subscription.trial_will_end',
]);
const INVOICE_EVENTS = new Set(['invoice.paid', 'invoice.payment_failed', 'invoice.payment_action_required']);

export const HANDLED_EVENTS = [...SUBSCRIPTION_EVENTS, ...INVOICE_EVENTS, 'customer.deleted'];

/** An invoice names its subscription under parent.subscription_details since API 2025-03-31, at the top level before. */
function invoiceSubscriptionId(invoice: Record<string, any>): string | null {
  const s = invoice.parent?.subscription_details?.subscription ?? invoice.subscription ?? null;
  return typeof s === 'string' ? s : (s?.id ?? null);
}

function subscriptionIdOf(event: Stripe.Event): string | null {
  const o = event.data.object as unknown as Record<string, any>;
  if (SUBSCRIPTION_EVENTS.has(event.type)) return o.id ?? null;
  if (INVOICE_EVENTS.has(event.type)) return invoiceSubscriptionId(o);
  return null;
}

export interface WebhookResult {
  eventId: string;
  type: string;
  result: 'processed' | 'duplicate' | 'ignored';
}

export interface StripeWebhooksDeps {
  db: Knex;
  events: StripeEventsRepository;
  subscriptions: SubscriptionsService;
  customersRepo: CustomersRepository;
  stripe: StripePort;
  audit: AuditService;
  logger: Logger;
  /** Read at every delivery: a secret from a file is replaced on SIGHUP. */
  secret: () => string | undefined;
  toleranceSeconds: number;
  now?: () => number;
  /** Observes each delivery's outcome (metrics). */
  onOutcome?: (type: string, outcome: 'processed' | 'duplicate' | 'ignored' | 'failed' | 'invalid_signature') => void;
}

/**
 * Stripe webhooks, applied once each and in any order:
 * 1. the signature is checked over the raw body (400 and nothing written if it fails);
 * 2. an event already processed is acknowledged and ignored;
 * 3. the subscription it concerns is re-read from Stripe, outside any transaction: whatever order
 *    events arrive in, we apply Stripe's current state, never the (possibly older) copy in the event,
 *    and a state read earlier never overwrites one read later (stripe_state_at);
 * 4. the event id is recorded in the same transaction as its effect.
 * A handler that fails answers 500 so Stripe retries; the failure is logged and kept for admins.
 */
export function createStripeWebhooksService(deps: StripeWebhooksDeps) {
  const { db, events, subscriptions, customersRepo, stripe, audit, logger } = deps;
  const now = deps.now ?? Date.now;

  function verify(raw: unknown, signature: string | undefined): Stripe.Event {
    const secret = deps.secret();
    if (!secret) throw new AppError('INVALID_SIGNATURE', 'Webhooks are not configured (STRIPE_WEBHOOK_SECRET)');
    if (!Buffer.isBuffer(raw) || raw.length === 0) throw new AppError('INVALID_SIGNATURE', 'The webhook body must be the raw JSON Stripe sent');
    if (!signature) throw new AppError('INVALID_SIGNATURE', 'Missing Stripe-Signature header');
    try {
      // receivedAt is in milliseconds.
      return Stripe.webhooks.constructEvent(raw, signature, secret, deps.toleranceSeconds, undefined, now());
    } catch {
      throw new AppError('INVALID_SIGNATURE', 'Invalid Stripe signature, or a timestamp outside the tolerance');
    }
  }

  async function apply(trx: Knex, event: Stripe.Event, live: StripeSubscriptionState | null, readAt: number, ctx: ActorContext) {
    const details: Record<string, unknown> = { event_id: event.id };
    if (event.type === 'customer.deleted') {
      const stripeCustomerId = (event.data.object as { id: string }).id;
      details.customer_id = await customersRepo.unlinkStripeCustomer(trx, stripeCustomerId);
      details.stripe_customer_id = stripeCustomerId;
    } else if (live) {
      const { outcome, subscriptionId } = await subscriptions.apply(live, readAt, trx);
      Object.assign(details, { subscription_id: subscriptionId, stripe_subscription_id: live.id, status: live.status, applied: outcome });
    } else {
      details.applied = 'nothing';
    }
    await audit.record(trx, ctx, { action: `stripe.${event.type}`, outcome: 'success', targetType: 'stripe_event', targetId: event.id, details });
  }

  return {
    async handle(raw: unknown, signature: string | undefined, ctx: ActorContext): Promise<WebhookResult> {
      let result: WebhookResult;
      try {
        result = await handleVerified(verify(raw, signature), ctx);
      } catch (err) {
        const invalid = err instanceof AppError && err.code === 'INVALID_SIGNATURE';
        deps.onOutcome?.(invalid ? 'unknown' : ((err as { eventType?: string }).eventType ?? 'unknown'), invalid ? 'invalid_signature' : 'failed');
        throw err;
      }
      deps.onOutcome?.(result.type, result.result);
      return result;
    },

    async status() {
      const [counts, failing] = await Promise.all([events.counts(db), events.listFailing(db, 50)]);
      return { counts, failing };
    },
  };

  async function handleVerified(event: Stripe.Event, ctx: ActorContext): Promise<WebhookResult> {
    const header: EventHeader = { id: event.id, type: event.type, created: event.created, objectId: (event.data.object as { id?: string }).id ?? null };
    if (await events.isProcessed(db, event.id)) return { eventId: event.id, type: event.type, result: 'duplicate' };

    const handled = HANDLED_EVENTS.includes(event.type);
    const stripeCtx: ActorContext = { ...ctx, actor: 'stripe', actorId: event.id };
    try {
      const subscriptionId = handled ? subscriptionIdOf(event) : null;
      const live = subscriptionId && stripe.enabled ? await stripe.retrieveSubscription(subscriptionId) : null;
      const readAt = now();
      const claimed = await db.transaction(async (trx) => {
        if (!(await events.claim(trx, header))) return false;
        if (handled) await apply(trx, event, live, readAt, stripeCtx);
        await events.markProcessed(trx, event.id);
        return true;
      });
      if (!claimed) return { eventId: event.id, type: event.type, result: 'duplicate' };
      return { eventId: event.id, type: event.type, result: handled ? 'processed' : 'ignored' };
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      logger.error({ err, eventId: event.id, type: event.type }, 'Stripe webhook failed; Stripe will retry it');
      await events.recordFailure(db, header, message).catch((e: unknown) => logger.error({ err: e }, 'could not record the webhook failure'));
      throw Object.assign(new AppError('INTERNAL_ERROR', 'The event could not be applied; Stripe will retry it', undefined, { cause: err }), {
        eventType: event.type,
      });
    }
  }
}

export type StripeWebhooksService = ReturnType<typeof createStripeWebhooksService>;
