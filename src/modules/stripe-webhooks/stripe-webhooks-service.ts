import type { Knex } from 'knex';
import type { Logger } from 'pino';
import Stripe from 'stripe';
import { z } from 'zod';
import { isDatabaseUnavailable } from '../../db/db-errors';
import { AppError } from '../../errors/app-error';
import type { ActorContext } from '../../lib/request-context';
import { StripeCallError, type StripeInvoiceState, type StripePort, type StripeSubscriptionState } from '../../stripe/stripe-port';
import type { AuditService } from '../audit/audit-service';
import type { CustomersService } from '../customers/customers-service';
import type { EventEmitter } from '../events/events-service';
import type { InvoiceApplied } from '../invoices/invoice-types';
import type { InvoicesService } from '../invoices/invoices-service';
import type { SubscriptionsService } from '../subscriptions/subscriptions-service';
import type { ForwardingService } from '../usage/forwarding-service';
import type { ForwardingFailures } from '../usage/forwarding-failures';
import { invoiceSummary } from './invoice-summary';
import { METER_ERROR_REPORT, parseMeterErrorReport } from './meter-error-report';
import type { EventHeader, StripeEventsRepository } from './stripe-events-repository';

/** An event that could not be applied: answered as a 500 so Stripe retries it; it names the event's type for the metrics. */
export class WebhookApplyError extends AppError {
  constructor(
    readonly eventType: string,
    cause: unknown,
  ) {
    super('INTERNAL_ERROR', 'The event could not be applied; Stripe will retry it', undefined, { cause });
    this.name = 'WebhookApplyError';
  }
}

/** Events that change a subscription, and where each keeps the subscription's id. */
const SUBSCRIPTION_EVENTS = new Set([
  'customer.subscription.created',
  'customer.subscription.updated',
  'customer.subscription.deleted',
  'customer.subscription.paused',
  'customer.subscription.resumed',
  'customer.subscription.trial_will_end',
]);
/** Invoice events that also move the invoice's subscription: it is re-read too. */
const INVOICE_EVENTS = new Set(['invoice.paid', 'invoice.payment_failed', 'invoice.payment_action_required']);
/** Events that change our copy of an invoice (invoices module): the invoice is re-read and applied. */
const INVOICE_COPY_EVENTS = new Set([
  'invoice.created',
  'invoice.finalized',
  'invoice.updated',
  'invoice.paid',
  'invoice.payment_failed',
  'invoice.voided',
  'invoice.marked_uncollectible',
  'invoice.deleted',
]);

export const HANDLED_EVENTS = [...new Set([...SUBSCRIPTION_EVENTS, ...INVOICE_EVENTS, ...INVOICE_COPY_EVENTS]), 'customer.deleted', METER_ERROR_REPORT];

/**
 * What every Stripe event has. A validly signed event without it can never be applied, however
 * often Stripe retries it: it is refused with 400 and recorded (by id, when it has one) for admins.
 */
const eventEnvelope = z.looseObject({
  id: z.string().min(1).max(255),
  type: z.string().min(1).max(255),
  created: z.number().int().nonnegative(),
  data: z.looseObject({ object: z.looseObject({}) }),
});
type VerifiedEvent = z.infer<typeof eventEnvelope>;

/** Stripe ids are prefix_ and letters or digits; anything else names nothing Stripe (or we) could hold. */
const STRIPE_ID = /^[A-Za-z0-9_]{1,255}$/;
const stripeId = (v: unknown): string | null => (typeof v === 'string' && STRIPE_ID.test(v) ? v : null);

/** An invoice names its subscription under parent.subscription_details since API 2025-03-31, at the top level before. */
/** A field of untrusted JSON, if it is an object. */
const field = (o: unknown, key: string): unknown => (o !== null && typeof o === 'object' ? (o as Record<string, unknown>)[key] : undefined);

/** An invoice names its subscription under parent.subscription_details since API 2025-03-31, at the top level before. */
function invoiceSubscriptionId(invoice: Record<string, unknown>): unknown {
  const s = field(field(field(invoice, 'parent'), 'subscription_details'), 'subscription') ?? invoice.subscription ?? null;
  return typeof s === 'string' ? s : field(s, 'id');
}

function subscriptionIdOf(event: VerifiedEvent): string | null {
  const o = event.data.object;
  if (SUBSCRIPTION_EVENTS.has(event.type)) return stripeId(o.id);
  if (INVOICE_EVENTS.has(event.type)) return stripeId(invoiceSubscriptionId(o));
  return null;
}

/** The `t=` values of a Stripe-Signature header (stripe-node uses the last one; we look at all). */
function signatureTimestamps(header: string): number[] {
  return header
    .split(',')
    .map((item) => item.split('='))
    .filter(([k]) => k?.trim() === 't')
    .map(([, v]) => Number(v));
}

/**
 * What an admin may read about a failure (stripe_events.last_error): a stable code and a short
 * message. Database errors carry their SQL and values: those go to the log only.
 */
function failureSummary(err: unknown, reread: 'subscription' | 'invoice'): string {
  if (err instanceof AppError) return `${err.code}: ${err.message}`;
  if (err instanceof StripeCallError) {
    return err.status === undefined
      ? `SERVICE_UNAVAILABLE: Stripe did not answer when the ${reread} was re-read`
      : `BAD_GATEWAY: Stripe answered ${err.status}${err.stripeCode ? ` (${err.stripeCode})` : ''} when the ${reread} was re-read`;
  }
  if (isDatabaseUnavailable(err)) return 'SERVICE_UNAVAILABLE: the database could not be reached';
  return 'INTERNAL_ERROR: the event could not be applied';
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
  /** Our copy of invoices: each invoice event's invoice, re-read, applied in the event's transaction. */
  invoices: Pick<InvoicesService, 'apply' | 'applyGone'>;
  customers: Pick<CustomersService, 'unlinkStripeCustomer' | 'findByStripeId'>;
  /** The usage module's outbox: marks usage events Stripe rejected after accepting them (meter error reports) as failed. */
  usage: Pick<ForwardingService, 'markRejected'>;
  /** usage.forwarding_failed for the events a meter error report fails, in the webhook's transaction. */
  usageFailures: Pick<ForwardingFailures, 'record'>;
  /** invoice.* events, in the webhook's transaction (so a duplicate delivery, never applied, writes none). */
  eventLog: EventEmitter;
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
 * 1. the signature is checked over the raw body, and its timestamp must be neither older nor
 *    newer than the tolerance (400 and nothing written if not); stripe-node checks only age;
 * 2. a signed event without the envelope every event has (id, type, created, data.object) is a
 *    400, recorded as failing so admins see it;
 * 3. an event already processed is acknowledged and ignored;
 * 4. the subscription (and, for invoice events, the invoice) it concerns is re-read from Stripe,
 *    outside any transaction: whatever order events arrive in, we apply Stripe's current state, never
 *    the (possibly older) copy in the event, and a state read earlier never overwrites one read later
 *    (stripe_state_at; an invoice's status never moves back either: invoices/invoice-order.ts);
 * 5. the event id is recorded in the same transaction as its effect. Objects that are not ours
 *    (other integrations share the Stripe account) are recorded as ignored, with the reason in the
 *    audit row: retrying them would never change the answer.
 * A handler that fails answers 500 so Stripe retries; the failure is logged, and kept for admins
 * as a code and a short message.
 */
export function createStripeWebhooksService(deps: StripeWebhooksDeps) {
  const { db, events, subscriptions, invoices, customers, usage, stripe, audit, logger } = deps;
  const now = deps.now ?? Date.now;

  function verify(raw: unknown, signature: string | undefined): unknown {
    const secret = deps.secret();
    if (!secret) throw new AppError('INVALID_SIGNATURE', 'Webhooks are not configured (STRIPE_WEBHOOK_SECRET)');
    if (!Buffer.isBuffer(raw) || raw.length === 0) throw new AppError('INVALID_SIGNATURE', 'The webhook body must be the raw JSON Stripe sent');
    if (!signature) throw new AppError('INVALID_SIGNATURE', 'Missing Stripe-Signature header');
    let payload: unknown;
    try {
      // receivedAt is in milliseconds.
      payload = Stripe.webhooks.constructEvent(raw, signature, secret, deps.toleranceSeconds, undefined, now());
    } catch (err) {
      if (err instanceof Stripe.errors.StripeSignatureVerificationError) {
        throw new AppError('INVALID_SIGNATURE', 'Invalid Stripe signature, or a timestamp outside the tolerance');
      }
      // Signed, but not JSON (or not a webhook event): nothing to record it by.
      logger.warn({ err: { message: (err as Error).message } }, 'malformed Stripe event: the signed body is not a JSON event');
      throw new AppError('BAD_REQUEST', 'Malformed Stripe event: the body is not a JSON event');
    }
    // A signature dated in the future would stay replayable until that date plus the tolerance.
    const latest = Math.floor(now() / 1000) + deps.toleranceSeconds;
    if (signatureTimestamps(signature).some((t) => !Number.isFinite(t) || t > latest)) {
      throw new AppError('INVALID_SIGNATURE', 'Invalid Stripe signature, or a timestamp outside the tolerance');
    }
    return payload;
  }

  /** A signed event we cannot apply: recorded by its id when it has one, else logged; always a 400. */
  async function refuseMalformed(payload: unknown, issues: z.core.$ZodIssue[]): Promise<never> {
    const reason = `malformed event: ${issues
      .map((i) => (i.path.length ? i.path.join('.') : 'the body'))
      .filter((p, i, all) => all.indexOf(p) === i)
      .join(', ')} missing or invalid`;
    const p = (payload && typeof payload === 'object' && !Array.isArray(payload) ? payload : {}) as Record<string, unknown>;
    const id = typeof p.id === 'string' && p.id.length > 0 && p.id.length <= 255 ? p.id : null;
    logger.warn({ eventId: id, id: id ?? (typeof p.id === 'string' ? p.id.slice(0, 64) : typeof p.id), reason }, 'malformed Stripe event refused');
    if (id) {
      const header: EventHeader = {
        id,
        type: typeof p.type === 'string' && p.type ? p.type.slice(0, 255) : '(missing)',
        created: Number.isSafeInteger(p.created) && (p.created as number) >= 0 ? (p.created as number) : 0,
        objectId: null,
      };
      await events
        .recordFailure(db, header, `BAD_REQUEST: ${reason}`)
        .catch((err: unknown) => logger.error({ err, eventId: id }, 'could not record the malformed event'));
    }
    throw new AppError('BAD_REQUEST', `Malformed Stripe event: ${reason}`);
  }

  type Applied = { result: 'processed' } | { result: 'ignored'; reason: string };
  /** What was re-read from Stripe for an event; `invoice` undefined: not an invoice event (or Stripe is off), null: Stripe has none. */
  type Live = { subscription: StripeSubscriptionState | null; invoice?: StripeInvoiceState | null };

  /** Our copy of the event's invoice, from Stripe's state as re-read (none: a deleted draft, whose copy goes too). */
  async function applyInvoice(trx: Knex, event: VerifiedEvent, live: Live, readAt: number): Promise<InvoiceApplied> {
    const invoiceId = stripeId(event.data.object.id);
    if (!stripe.enabled) return { outcome: 'ignored', invoiceId: null, reason: 'Stripe is off' };
    if (!invoiceId) return { outcome: 'ignored', invoiceId: null, reason: 'it names no invoice' };
    return live.invoice ? invoices.apply(trx, live.invoice, readAt) : invoices.applyGone(trx, invoiceId);
  }

  async function apply(trx: Knex, event: VerifiedEvent, live: Live, readAt: number, ctx: ActorContext): Promise<Applied> {
    const details: Record<string, unknown> = { event_id: event.id };
    let applied: Applied = { result: 'processed' };
    if (event.type === METER_ERROR_REPORT) {
      // Parsed before the transaction (handleVerified): here it is known to be a report.
      const report = parseMeterErrorReport(event.data.object)!;
      const marked = await usage.markRejected(trx, report.rejections);
      await deps.usageFailures.record(trx, marked, { source: 'stripe_error_report', stripe_event_id: event.id, meter: report.meter });
      Object.assign(details, {
        meter: report.meter,
        error_count: report.errorCount,
        named: report.rejections.length,
        marked_failed: marked.length,
        foreign: report.foreign,
      });
      logger.warn(
        { eventId: event.id, meter: report.meter, errorCount: report.errorCount, markedFailed: marked.length, summary: report.summary },
        'Stripe rejected usage events after accepting them',
      );
      if (report.rejections.length === 0) applied = { result: 'ignored', reason: 'the report names none of our events' };
    } else if (event.type === 'customer.deleted') {
      const stripeCustomerId = stripeId(event.data.object.id);
      const customerId = stripeCustomerId ? await customers.unlinkStripeCustomer(trx, stripeCustomerId) : null;
      Object.assign(details, { customer_id: customerId, stripe_customer_id: stripeCustomerId });
      if (!customerId) applied = { result: 'ignored', reason: 'no customer of ours is linked to this Stripe customer' };
    } else if (live.subscription) {
      const r = await subscriptions.apply(live.subscription, readAt, trx, ctx);
      Object.assign(details, {
        subscription_id: r.subscriptionId,
        stripe_subscription_id: live.subscription.id,
        status: live.subscription.status,
        applied: r.outcome,
      });
      if (r.outcome !== 'ignored' && r.adopted) details.adopted = true;
      if (r.outcome === 'ignored') applied = { result: 'ignored', reason: r.reason };
    } else if (SUBSCRIPTION_EVENTS.has(event.type) || INVOICE_EVENTS.has(event.type)) {
      applied = {
        result: 'ignored',
        reason: !stripe.enabled ? 'Stripe is off' : subscriptionIdOf(event) ? 'Stripe has no such subscription' : 'it names no subscription',
      };
    }
    if (INVOICE_COPY_EVENTS.has(event.type)) {
      const r = await applyInvoice(trx, event, live, readAt);
      // Ids, status and outcome only: an invoice's URLs open it to whoever holds them.
      Object.assign(details, {
        invoice_id: r.invoiceId,
        stripe_invoice_id: stripeId(event.data.object.id),
        invoice_status: live.invoice?.status ?? null,
        invoice_applied: r.outcome,
      });
      if ('reason' in r && r.reason) details.invoice_reason = r.reason;
      // Ignored only when neither its subscription nor its invoice was ours to apply.
      const subscriptionPart = SUBSCRIPTION_EVENTS.has(event.type) || INVOICE_EVENTS.has(event.type) ? applied : null;
      if (r.outcome !== 'ignored') applied = { result: 'processed' };
      else if (!subscriptionPart) applied = { result: 'ignored', reason: r.reason };
      else if (subscriptionPart.result === 'ignored' && subscriptionPart.reason !== r.reason) {
        applied = { result: 'ignored', reason: `${subscriptionPart.reason}; the invoice: ${r.reason}` };
      }
    }
    if (event.type === 'invoice.paid' || event.type === 'invoice.payment_failed') {
      // Told for any invoice of a customer of ours, with our subscription's id when it is one of ours.
      const stripeCustomerId = stripeId(field(event.data.object, 'customer') ?? null) ?? stripeId(field(field(event.data.object, 'customer'), 'id'));
      const customer = stripeCustomerId ? await customers.findByStripeId(trx, stripeCustomerId) : null;
      if (customer) {
        const subscriptionId = typeof details.subscription_id === 'string' ? details.subscription_id : null;
        const data = invoiceSummary(event.data.object, { customerId: customer.id, subscriptionId, stripeSubscriptionId: subscriptionIdOf(event) });
        await deps.eventLog.emit(trx, { type: event.type, customerId: customer.id, data });
      }
    }
    if (applied.result === 'ignored') details.ignored = applied.reason;
    await audit.record(trx, ctx, { action: `stripe.${event.type}`, outcome: 'success', targetType: 'stripe_event', targetId: event.id, details });
    return applied;
  }

  return {
    async handle(raw: unknown, signature: string | undefined, ctx: ActorContext): Promise<WebhookResult> {
      let result: WebhookResult;
      try {
        const payload = verify(raw, signature);
        const parsed = eventEnvelope.safeParse(payload);
        if (!parsed.success) await refuseMalformed(payload, parsed.error.issues);
        result = await handleVerified(parsed.data!, ctx);
      } catch (err) {
        const invalid = err instanceof AppError && err.code === 'INVALID_SIGNATURE';
        deps.onOutcome?.(err instanceof WebhookApplyError ? err.eventType : 'unknown', invalid ? 'invalid_signature' : 'failed');
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

  async function handleVerified(event: VerifiedEvent, ctx: ActorContext): Promise<WebhookResult> {
    const objectId = typeof event.data.object.id === 'string' ? event.data.object.id.slice(0, 255) : null;
    const header: EventHeader = { id: event.id, type: event.type, created: event.created, objectId };
    if (await events.isProcessed(db, event.id)) return { eventId: event.id, type: event.type, result: 'duplicate' };

    const handled = HANDLED_EVENTS.includes(event.type);
    if (event.type === METER_ERROR_REPORT && !parseMeterErrorReport(event.data.object)) {
      await refuseMalformed(event, [{ code: 'custom', path: ['data', 'object', 'reason'], message: 'not a meter error report', input: undefined }]);
    }
    const stripeCtx: ActorContext = { ...ctx, actor: 'stripe', actorId: event.id };
    let reread: 'subscription' | 'invoice' = 'subscription';
    try {
      const subscriptionId = handled ? subscriptionIdOf(event) : null;
      const live: Live = { subscription: subscriptionId && stripe.enabled ? await stripe.retrieveSubscription(subscriptionId) : null };
      const invoiceId = INVOICE_COPY_EVENTS.has(event.type) && stripe.enabled ? stripeId(event.data.object.id) : null;
      if (invoiceId) {
        reread = 'invoice';
        live.invoice = await stripe.retrieveInvoice(invoiceId);
      }
      const readAt = now();
      const applied = await db.transaction(async (trx): Promise<Applied | null> => {
        if (!(await events.claim(trx, header))) return null;
        const a: Applied = handled ? await apply(trx, event, live, readAt, stripeCtx) : { result: 'ignored', reason: 'not an event type we handle' };
        await events.markProcessed(trx, event.id);
        return a;
      });
      if (!applied) return { eventId: event.id, type: event.type, result: 'duplicate' };
      return { eventId: event.id, type: event.type, result: applied.result };
    } catch (err) {
      logger.error({ err, eventId: event.id, type: event.type }, 'Stripe webhook failed; Stripe will retry it');
      await events
        .recordFailure(db, header, failureSummary(err, reread))
        .catch((e: unknown) => logger.error({ err: e, eventId: event.id }, 'could not record the webhook failure'));
      throw new WebhookApplyError(event.type, err);
    }
  }
}

export type StripeWebhooksService = ReturnType<typeof createStripeWebhooksService>;
