import Stripe from 'stripe';
import type { Config } from '../config';
import { createMeterEventSessionHolder } from './meter-event-session';
import {
  disabledStripe,
  INVOICE_STATUSES,
  MAX_INVOICE_LINES,
  type InvoiceStatus,
  type StripeInvoiceLine,
  type StripeInvoiceState,
  METER_STREAM_MAX_EVENTS,
  MeterEventInput,
  StripeCallError,
  StripePort,
  StripeSubscriptionState,
  SubscriptionStatus,
} from './stripe-port';

const date = (seconds: number | null | undefined) => (seconds ? new Date(seconds * 1000) : null);

export function toSubscriptionState(s: Stripe.Subscription): StripeSubscriptionState {
  const items = s.items?.data ?? [];
  const first = items[0];
  return {
    id: s.id,
    // Empty when absent: it then matches no customer of ours, and the subscription is ignored.
    stripeCustomerId: typeof s.customer === 'string' ? s.customer : (s.customer?.id ?? ''),
    status: s.status as SubscriptionStatus,
    currentPeriodStart: date(first?.current_period_start),
    currentPeriodEnd: date(first?.current_period_end),
    cancelAtPeriodEnd: s.cancel_at_period_end,
    canceledAt: date(s.canceled_at),
    trialEnd: date(s.trial_end),
    items: items.map((i) => ({ id: i.id, priceId: i.price.id })),
    metadata: s.metadata ?? {},
  };
}

const idOf = (v: unknown): string | null =>
  typeof v === 'string' ? v : v && typeof v === 'object' && typeof (v as { id?: unknown }).id === 'string' ? (v as { id: string }).id : null;
const int = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? Math.trunc(v) : 0);

export function toInvoiceLine(l: Stripe.InvoiceLineItem): StripeInvoiceLine {
  const legacy = l as unknown as { price?: unknown };
  const decimal = l.quantity_decimal === null || l.quantity_decimal === undefined ? null : Number(String(l.quantity_decimal));
  return {
    id: l.id,
    description: l.description ?? null,
    quantity: decimal !== null && Number.isFinite(decimal) ? decimal : typeof l.quantity === 'number' ? l.quantity : null,
    amount: int(l.amount),
    priceId: idOf(l.pricing?.price_details?.price) ?? idOf(legacy.price),
    periodStart: date(l.period?.start),
    periodEnd: date(l.period?.end),
  };
}

/** Stripe's invoice, with `lines` (every page already fetched, or the first page's). */
export function toInvoiceState(inv: Stripe.Invoice, lines: Stripe.InvoiceLineItem[] = inv.lines?.data ?? []): StripeInvoiceState {
  const legacy = inv as unknown as { subscription?: unknown; tax?: unknown };
  const taxes = Array.isArray(inv.total_taxes) ? inv.total_taxes.reduce((sum, t) => sum + int(t.amount), 0) : int(legacy.tax);
  const status = (INVOICE_STATUSES as readonly string[]).includes(inv.status ?? '') ? (inv.status as InvoiceStatus) : 'draft';
  const t = inv.status_transitions;
  return {
    id: inv.id ?? '',
    stripeCustomerId: idOf(inv.customer) ?? '',
    stripeSubscriptionId: idOf(inv.parent?.subscription_details?.subscription) ?? idOf(legacy.subscription),
    number: inv.number ?? null,
    status,
    currency: inv.currency,
    amountDue: int(inv.amount_due),
    amountPaid: int(inv.amount_paid),
    amountRemaining: int(inv.amount_remaining),
    subtotal: int(inv.subtotal),
    tax: taxes,
    total: int(inv.total),
    periodStart: date(inv.period_start),
    periodEnd: date(inv.period_end),
    dueDate: date(inv.due_date),
    hostedInvoiceUrl: inv.hosted_invoice_url ?? null,
    invoicePdf: inv.invoice_pdf ?? null,
    created: new Date(int(inv.created) * 1000),
    finalizedAt: date(t?.finalized_at),
    paidAt: date(t?.paid_at),
    voidedAt: date(t?.voided_at),
    markedUncollectibleAt: date(t?.marked_uncollectible_at),
    lines: lines.slice(0, MAX_INVOICE_LINES).map(toInvoiceLine),
  };
}

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
  const e = err as { type?: string; statusCode?: number; code?: string; message?: string; requestId?: string };
  const status = e.statusCode;
  const message = `${e.type ?? 'Error'}${status ? ` ${status}` : ''}: ${e.message ?? String(err)}`.slice(0, 500);
  const retryable =
    // The meter event stream's session token expired: a new session and the same events again.
    e.type === 'TemporarySessionExpiredError' ||
    e.type === 'StripeConnectionError' ||
    e.type === 'StripeAPIError' ||
    e.type === 'StripeRateLimitError' ||
    status === undefined ||
    status === 409 ||
    status === 429 ||
    status >= 500;
  return new StripeCallError(message, retryable, status, e.type === 'TemporarySessionExpiredError' ? 'temporary_session_expired' : e.code, e.requestId);
}

const isSessionExpired = (err: unknown) => (err as { type?: string }).type === 'TemporarySessionExpiredError';

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
  const call = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (err) {
      throw classifyStripeError(err);
    }
  };

  // stripe-node sends v2 meter event stream calls to meter-events.stripe.com, or to `host` when set
  // (STRIPE_API_BASE): the fake Stripe in tests serves both APIs.
  const session = createMeterEventSessionHolder({
    create: async () => {
      const s = await call(() => stripe.v2.billing.meterEventSession.create());
      return { token: s.authentication_token, expiresAt: Date.parse(s.expires_at) };
    },
  });
  const stream = async (token: string, input: MeterEventInput[]) => {
    const res = (await stripe.v2.billing.meterEventStream.create(
      {
        events: input.map((e) => ({
          event_name: e.eventName,
          identifier: e.identifier,
          timestamp: e.occurredAt.toISOString(),
          payload: { stripe_customer_id: e.stripeCustomerId, value: e.value },
        })),
      },
      // Identifiers, not idempotency keys, make a resend count once here; the forwarder owns retries.
      { apiKey: token, maxNetworkRetries: 0 },
    )) as unknown as { lastResponse?: { requestId?: string } } | undefined;
    return { requestId: res?.lastResponse?.requestId ?? null };
  };

  /** An invoice's lines: its first page, and the rest page by page when it has more (up to MAX_INVOICE_LINES). */
  const allLines = async (inv: Stripe.Invoice): Promise<Stripe.InvoiceLineItem[]> => {
    const first = inv.lines?.data ?? [];
    if (!inv.lines?.has_more || !inv.id) return first;
    const lines: Stripe.InvoiceLineItem[] = [];
    await call(async () => {
      for await (const l of stripe.invoices.listLineItems(inv.id, { limit: 100 })) {
        lines.push(l);
        if (lines.length >= MAX_INVOICE_LINES) break;
      }
    });
    return lines;
  };

  return {
    enabled: true,
    // The submission id is ours: the forwarder stores it on the events and logs it with Stripe's request id.
    async sendMeterEventStream({ events }) {
      if (events.length === 0 || events.length > METER_STREAM_MAX_EVENTS) {
        throw new StripeCallError(`a meter event stream call takes 1-${METER_STREAM_MAX_EVENTS} events, not ${events.length}`, false);
      }
      for (let tries = 1; ; tries++) {
        const token = await session.token();
        try {
          return await stream(token, events);
        } catch (err) {
          // Refused before any work was done: renew once at once; a second refusal is a retry later.
          if (isSessionExpired(err)) session.expire(token);
          if (!isSessionExpired(err) || tries >= 2) throw classifyStripeError(err);
        }
      }
    },

    async sendMeterEvent(input: MeterEventInput) {
      await call(() =>
        stripe.billing.meterEvents.create(
          {
            event_name: input.eventName,
            identifier: input.identifier,
            timestamp: Math.floor(input.occurredAt.getTime() / 1000),
            payload: { stripe_customer_id: input.stripeCustomerId, value: input.value },
          },
          { idempotencyKey: `meter-event-${input.identifier}`, maxNetworkRetries: 0 },
        ),
      );
    },

    async createCustomer({ customerId, email, name }) {
      const c = await call(() =>
        stripe.customers.create({ email, name, metadata: { customer_id: customerId } }, { idempotencyKey: `customer-create-${customerId}` }),
      );
      return c.id;
    },

    async updateCustomer(stripeCustomerId, changes, idempotencyKey) {
      await call(() => stripe.customers.update(stripeCustomerId, changes, { idempotencyKey }));
    },

    async createSubscription({ idempotencyKey, stripeCustomerId, priceIds, trialDays, metadata }) {
      const s = await call(() =>
        stripe.subscriptions.create(
          {
            customer: stripeCustomerId,
            items: priceIds.map((price) => ({ price })),
            ...(trialDays ? { trial_period_days: trialDays } : {}),
            metadata,
          },
          { idempotencyKey },
        ),
      );
      return toSubscriptionState(s);
    },

    async updateSubscriptionItems(subscriptionId, items, idempotencyKey) {
      const s = await call(() => stripe.subscriptions.update(subscriptionId, { items, proration_behavior: 'create_prorations' }, { idempotencyKey }));
      return toSubscriptionState(s);
    },

    async cancelSubscription(subscriptionId, atPeriodEnd, idempotencyKey) {
      const s = await call(() =>
        atPeriodEnd
          ? stripe.subscriptions.update(subscriptionId, { cancel_at_period_end: true }, { idempotencyKey })
          : stripe.subscriptions.cancel(subscriptionId, {}, { idempotencyKey }),
      );
      return toSubscriptionState(s);
    },

    async retrieveSubscription(subscriptionId) {
      try {
        return toSubscriptionState(await stripe.subscriptions.retrieve(subscriptionId));
      } catch (err) {
        const e = classifyStripeError(err);
        if (e.status === 404) return null;
        throw e;
      }
    },

    async retrieveInvoice(invoiceId) {
      let inv: Stripe.Invoice;
      try {
        inv = await stripe.invoices.retrieve(invoiceId);
      } catch (err) {
        const e = classifyStripeError(err);
        if (e.status === 404) return null;
        throw e;
      }
      return toInvoiceState(inv, await allLines(inv));
    },

    async listInvoices(stripeCustomerId, opts = {}) {
      const out: StripeInvoiceState[] = [];
      await call(async () => {
        const params: Stripe.InvoiceListParams = { customer: stripeCustomerId, limit: 100 };
        if (opts.createdSince) params.created = { gte: Math.floor(opts.createdSince.getTime() / 1000) };
        for await (const inv of stripe.invoices.list(params)) out.push(toInvoiceState(inv, await allLines(inv)));
      });
      return out;
    },

    async previewInvoice({ stripeCustomerId, stripeSubscriptionId }) {
      const inv = await call(() => stripe.invoices.createPreview({ customer: stripeCustomerId, subscription: stripeSubscriptionId }));
      return toInvoiceState(inv);
    },

    async createPortalSession({ stripeCustomerId, returnUrl, configuration }) {
      const s = await call(() =>
        stripe.billingPortal.sessions.create({ customer: stripeCustomerId, return_url: returnUrl, ...(configuration ? { configuration } : {}) }),
      );
      return { url: s.url, created: new Date(s.created * 1000) };
    },

    async retrievePrice(priceId) {
      let p: Stripe.Price;
      try {
        p = await call(() => stripe.prices.retrieve(priceId));
      } catch (err) {
        if (err instanceof StripeCallError && err.status === 404) return null;
        throw err;
      }
      return {
        id: p.id,
        currency: p.currency,
        product: typeof p.product === 'string' ? p.product : p.product.id,
        active: p.active,
        billingScheme: p.billing_scheme === 'tiered' ? 'tiered' : 'per_unit',
        unitAmountDecimal: p.unit_amount_decimal != null ? String(p.unit_amount_decimal) : p.unit_amount !== null ? String(p.unit_amount) : null,
        transformQuantity: p.transform_quantity
          ? { divideBy: p.transform_quantity.divide_by, round: p.transform_quantity.round === 'up' ? 'up' : 'down' }
          : null,
      };
    },

    async createInvoiceItem(input) {
      const item = await call(() =>
        stripe.invoiceItems.create(
          {
            customer: input.stripeCustomerId,
            ...(input.stripeSubscriptionId ? { subscription: input.stripeSubscriptionId } : {}),
            price_data: { currency: input.currency, product: input.product, unit_amount_decimal: Stripe.Decimal.from(input.unitAmountDecimal) },
            quantity_decimal: Stripe.Decimal.from(input.quantityDecimal),
            description: input.description,
            period: { start: Math.floor(input.period.start.getTime() / 1000), end: Math.ceil(input.period.end.getTime() / 1000) },
            metadata: input.metadata,
          },
          // The true-up worker owns retries (backoff that survives restarts); the key makes each resend one item.
          { idempotencyKey: input.idempotencyKey, maxNetworkRetries: 0 },
        ),
      );
      return item.id;
    },

    async listSubscriptions(stripeCustomerId) {
      const out: StripeSubscriptionState[] = [];
      for await (const s of stripe.subscriptions.list({ customer: stripeCustomerId, status: 'all', limit: 100 })) {
        out.push(toSubscriptionState(s));
      }
      return out;
    },
  };
}
