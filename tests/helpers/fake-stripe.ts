/**
 * A small fake of Stripe's HTTP API for tests: the real stripe-node client talks to it through
 * its host/port/protocol options. It records every request (method, path, idempotency key,
 * decoded form or JSON body), serves objects shaped like Stripe's, and can be told to fail, stall,
 * answer slowly, or fail at random.
 *
 * The v2 meter event stream: stripe-node sends it to meter-events.stripe.com, or to `host` when one
 * is set, so this server answers both. POST /v2/billing/meter_event_session hands out a token valid
 * for `sessionTtlMs` (Stripe: 15 minutes); POST /v2/billing/meter_event_stream takes up to 100
 * events with `Authorization: Bearer <token>`, and an expired token gets what Stripe answers (401,
 * `{"error": {"type": "temporary_session_expired", "code": "billing_meter_event_session_expired"}}`,
 * which stripe-node turns into TemporarySessionExpiredError). Meter events from both APIs are held by
 * identifier, the first one kept, as Stripe de-duplicates them: `held` is what Stripe would bill.
 *
 * Billing for the customer's people: invoices (GET /v1/invoices/:id, its /lines, GET /v1/invoices by
 * customer, newest first, paged with starting_after), invoice previews (POST
 * /v1/invoices/create_preview: a line per subscription item, a metered price's quantity summed from
 * the meter events held for its meter's event_name, customer and period), meters (POST
 * /v1/billing/meters) and customer portal sessions (POST /v1/billing_portal/sessions). Objects carry
 * every field of Stripe's published fixtures (github.com/stripe/openapi fixtures3.json), checked
 * against tests/fixtures/stripe-fixture-shapes.json by tests/unit/fake-stripe-shapes.test.ts.
 *
 * Prices (POST /v1/prices, GET /v1/prices/:id) in Stripe's shape, per-unit or tiered, with
 * transform_quantity; invoice items (POST /v1/invoiceitems) from price_data and quantity_decimal, as
 * the true-up worker makes them, kept in `invoiceItems` (what Stripe would put on the next invoice).
 * Every POST honours Idempotency-Key as Stripe's v1 API does: the same key on the same path answers
 * the first answer again and does nothing more (a 5xx injected here is not kept, as a failure before
 * Stripe's endpoint ran is not). Faults: failNext(/invoiceitems/, n, {status: 500}) for the next n
 * calls, 'drop' for an answer lost after the item was made.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  path: string;
  idempotencyKey: string | undefined;
  stripeVersion: string | undefined;
  authorization: string | undefined;
  body: Record<string, unknown>;
  at: number;
}

/** 'stall': never answers, does nothing; 'drop': does the work, then never answers (a lost response). */
export type Failure = { status: number; type?: string; message?: string } | 'stall' | 'drop';

export interface FakeSubscription {
  id: string;
  object: 'subscription';
  customer: string;
  status: string;
  cancel_at_period_end: boolean;
  canceled_at: number | null;
  trial_end: number | null;
  created: number;
  metadata: Record<string, string>;
  items: {
    object: 'list';
    data: { id: string; object: 'subscription_item'; price: { id: string; object: 'price' }; current_period_start: number; current_period_end: number }[];
  };
}

export interface FakeEvent {
  id: string;
  object: 'event';
  api_version: string;
  created: number;
  livemode: boolean;
  pending_webhooks: number;
  type: string;
  data: { object: Record<string, unknown> };
}

/** A meter event as Stripe keeps it, by identifier. */
export interface HeldMeterEvent {
  identifier: string;
  event_name: string;
  payload: Record<string, string>;
  timestamp: string;
  via: 'v1' | 'stream';
}

/** A line to put on a fake invoice. */
export interface FakeLineInput {
  description?: string;
  quantity?: number;
  /** A decimal quantity (a metered price's), sent as quantity_decimal. */
  quantityDecimal?: string;
  amount: number;
  price?: string | null;
  period?: { start: number; end: number };
}

export type FakeInvoiceStatus = 'draft' | 'open' | 'paid' | 'void' | 'uncollectible';

export interface FakeInvoiceInput {
  customer: string;
  subscription?: string | null;
  status?: FakeInvoiceStatus;
  lines?: FakeLineInput[];
  created?: number;
  period?: { start: number; end: number };
  currency?: string;
  /** Tax added to the total (as one total_taxes entry). */
  tax?: number;
}

export interface FakePortalSession {
  id: string;
  object: 'billing_portal.session';
  customer: string;
  return_url: string | null;
  configuration: string;
  url: string;
  created: number;
  [key: string]: unknown;
}

export interface FakeStripe {
  url: string;
  /** Meter events Stripe holds, by identifier (the first one sent; repeats are dropped and counted). */
  held: Map<string, HeldMeterEvent>;
  /** Meter events dropped because their identifier was already held. */
  duplicates(): number;
  /** Sessions created on POST /v2/billing/meter_event_session. */
  sessionsCreated(): number;
  /** How long a new session token is valid (default 15 minutes). */
  setSessionTtl(ms: number): void;
  /** Every session token issued so far is expired from now on. */
  expireSessions(): void;
  /** Each answer is delayed by a random time in [minMs, maxMs] (the work is done at once). */
  setLatency(minMs: number, maxMs: number): void;
  /** Each request to a matching path fails with probability `rate`, picking one of `failures` at random. */
  failRandomly(path: RegExp, rate: number, failures: Failure[]): void;
  /** POST /v2/billing/meter_event_stream calls (accepted or not). */
  streamCalls(): RecordedRequest[];
  requests: RecordedRequest[];
  customers: Map<string, Record<string, unknown>>;
  subscriptions: Map<string, FakeSubscription>;
  prices: Map<string, Record<string, unknown>>;
  /** Invoice items made by POST /v1/invoiceitems, by id, in the order made (one per idempotency key). */
  invoiceItems: Map<string, Record<string, any>>;
  /** POST /v1/invoiceitems calls (answered, failed or dropped). */
  invoiceItemCalls(): RecordedRequest[];
  invoices: Map<string, Record<string, any>>;
  /** Builds an event in Stripe's shape and keeps it, so GET /v1/events/:id serves it. */
  event(type: string, object: Record<string, unknown>, created?: number): FakeEvent;
  /** An invoice of a subscription, in the API 2025-03-31+ shape (parent.subscription_details): one line per item. */
  invoice(subscriptionId: string, status: FakeInvoiceStatus): Record<string, any>;
  /** Any invoice, kept so GET /v1/invoices serves it. Draft unless told; a finalized one has a number and URLs. */
  createInvoice(input: FakeInvoiceInput): Record<string, any>;
  /** Moves an invoice as Stripe would (finalize, pay, void, mark uncollectible), with its transitions and amounts. */
  setInvoiceStatus(id: string, status: FakeInvoiceStatus): Record<string, any>;
  /** Meters created on POST /v1/billing/meters, by id. */
  meters: Map<string, Record<string, unknown>>;
  /** Customer portal sessions created, in order. */
  portalSessions: FakePortalSession[];
  /** POST /v1/invoices/create_preview calls. */
  previewCalls(): RecordedRequest[];
  /** Changes a subscription as Stripe would (e.g. a payment failed), without a request. */
  setSubscription(id: string, patch: Partial<FakeSubscription>): FakeSubscription;
  /** The next `times` requests to paths matching `path` fail this way. */
  failNext(path: RegExp, times: number, failure: Failure): void;
  /** Every request to a matching path fails this way until cleared. */
  failAlways(path: RegExp, failure: Failure): void;
  clearFailures(): void;
  meterEvents(): RecordedRequest[];
  close(): Promise<void>;
}

/** Decodes stripe-node's form encoding (a[b][c]=v, a[0]=v) into nested objects and arrays. */
export function decodeForm(text: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [rawKey, value] of new URLSearchParams(text)) {
    const parts = rawKey.split(/\[|\]\[|\]/).filter((p) => p !== '');
    let node = out;
    parts.forEach((p, i) => {
      if (i === parts.length - 1) node[p] = value;
      else node = (node[p] ??= {}) as Record<string, unknown>;
    });
  }
  const arrays = (v: unknown): unknown => {
    if (!v || typeof v !== 'object') return v;
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length > 0 && keys.every((k) => /^\d+$/.test(k))) return keys.sort((a, b) => +a - +b).map((k) => arrays(o[k]));
    return Object.fromEntries(keys.map((k) => [k, arrays(o[k])]));
  };
  return arrays(out) as Record<string, unknown>;
}

const id = (prefix: string) => `${prefix}_${randomBytes(12).toString('hex')}`;

export async function startFakeStripe(): Promise<FakeStripe> {
  const requests: RecordedRequest[] = [];
  let once: { path: RegExp; left: number; failure: Failure }[] = [];
  let always: { path: RegExp; failure: Failure }[] = [];
  let randomly: { path: RegExp; rate: number; failures: Failure[] }[] = [];
  let latency: [number, number] = [0, 0];
  const held = new Map<string, HeldMeterEvent>();
  let duplicates = 0;
  const sessions = new Map<string, number>();
  let sessionTtlMs = 15 * 60_000;
  let sessionsCreated = 0;
  const hold = (e: Omit<HeldMeterEvent, 'identifier'> & { identifier?: string }) => {
    const identifier = e.identifier ?? id('mev');
    if (held.has(identifier)) duplicates++;
    else held.set(identifier, { ...e, identifier });
  };
  const stalled = new Set<http.ServerResponse>();
  // Stripe replays the first response for a repeated idempotency key.
  const idempotent = new Map<string, { status: number; body: unknown }>();
  const customers = new Map<string, Record<string, unknown>>();
  const subscriptions = new Map<string, FakeSubscription>();
  const prices = new Map<string, Record<string, unknown>>();
  const invoiceItems = new Map<string, Record<string, any>>();
  const invoices = new Map<string, Record<string, any>>();
  const events = new Map<string, FakeEvent>();
  const meters = new Map<string, Record<string, unknown>>();
  const portalSessions: FakePortalSession[] = [];
  let invoiceNumber = 0;
  let eventClock = Math.floor(Date.now() / 1000);
  const notFound = (what: string, key: string) => ({
    status: 404,
    body: { error: { type: 'invalid_request_error', code: 'resource_missing', message: `No such ${what}: '${key}'` } },
  });
  const MONTH = 30 * 86400;

  /** An invoice line in Stripe's shape (fixtures3.json line_item). */
  function lineObject(invoiceId: string, l: FakeLineInput, currency: string, subscription: string | null): Record<string, unknown> {
    const at = Math.floor(Date.now() / 1000);
    return {
      id: id('il'),
      object: 'line_item',
      amount: l.amount,
      currency,
      description: l.description ?? null,
      discount_amounts: [],
      discountable: true,
      discounts: [],
      invoice: invoiceId,
      livemode: false,
      metadata: {},
      parent: subscription
        ? {
            type: 'subscription_item_details',
            invoice_item_details: null,
            subscription_item_details: {
              invoice_item: null,
              proration: false,
              proration_details: { credited_items: null },
              subscription,
              subscription_item: id('si'),
            },
          }
        : {
            type: 'invoice_item_details',
            invoice_item_details: { invoice_item: id('ii'), proration: false, proration_details: { credited_items: null }, subscription: null },
            subscription_item_details: null,
          },
      period: l.period ?? { start: at, end: at },
      pretax_credit_amounts: null,
      pricing: l.price
        ? {
            type: 'price_details',
            price_details: { price: l.price, product: (prices.get(l.price)?.product as string | undefined) ?? id('prod') },
            unit_amount_decimal: l.quantity ? String(l.amount / l.quantity) : null,
          }
        : { type: 'price_details', unit_amount_decimal: null },
      quantity: l.quantityDecimal !== undefined ? Math.round(Number(l.quantityDecimal)) : (l.quantity ?? null),
      quantity_decimal: l.quantityDecimal ?? (l.quantity !== undefined ? String(l.quantity) : null),
      subscription,
      subtotal: l.amount,
      taxes: null,
    };
  }

  /** An invoice in Stripe's shape (fixtures3.json invoice), every field present. */
  function invoiceObject(input: FakeInvoiceInput & { id?: string }): Record<string, any> {
    const created = input.created ?? Math.floor(Date.now() / 1000);
    const currency = input.currency ?? 'usd';
    const invId = input.id ?? id('in');
    const subscription = input.subscription ?? null;
    const lines = (input.lines ?? []).map((l) => lineObject(invId, l, currency, subscription));
    const subtotal = lines.reduce((sum, l) => sum + (l.amount as number), 0);
    const tax = input.tax ?? 0;
    const total = subtotal + tax;
    const period = input.period ?? { start: created, end: created };
    const inv: Record<string, any> = {
      id: invId,
      object: 'invoice',
      account_country: 'US',
      account_name: 'Vendor Inc.',
      account_tax_ids: null,
      amount_due: total,
      amount_overpaid: 0,
      amount_paid: 0,
      amount_remaining: total,
      amount_shipping: 0,
      application: null,
      attempt_count: 0,
      attempted: false,
      auto_advance: true,
      automatic_tax: { disabled_reason: null, enabled: false, liability: null, provider: null, status: null },
      automatically_finalizes_at: null,
      billing_reason: subscription ? 'subscription_cycle' : 'manual',
      collection_method: 'charge_automatically',
      created,
      currency,
      custom_fields: null,
      customer: input.customer,
      customer_account: null,
      customer_address: null,
      customer_email: (customers.get(input.customer)?.email as string | undefined) ?? null,
      customer_name: (customers.get(input.customer)?.name as string | undefined) ?? null,
      customer_phone: null,
      customer_shipping: null,
      customer_tax_exempt: 'none',
      customer_tax_ids: [],
      default_payment_method: null,
      default_source: null,
      default_tax_rates: [],
      description: null,
      discounts: [],
      due_date: null,
      effective_at: null,
      ending_balance: null,
      footer: null,
      from_invoice: null,
      hosted_invoice_url: null,
      invoice_pdf: null,
      issuer: { type: 'self' },
      last_finalization_error: null,
      latest_revision: null,
      lines: { object: 'list', data: lines, has_more: false, url: `/v1/invoices/${invId}/lines` },
      livemode: false,
      metadata: {},
      next_payment_attempt: null,
      number: null,
      on_behalf_of: null,
      parent: subscription ? { type: 'subscription_details', quote_details: null, subscription_details: { metadata: {}, subscription } } : null,
      payment_settings: { default_mandate: null, payment_method_options: null, payment_method_types: null },
      period_end: period.end,
      period_start: period.start,
      post_payment_credit_notes_amount: 0,
      pre_payment_credit_notes_amount: 0,
      receipt_number: null,
      rendering: null,
      shipping_cost: null,
      shipping_details: null,
      starting_balance: 0,
      statement_descriptor: null,
      status: 'draft',
      status_transitions: { finalized_at: null, marked_uncollectible_at: null, paid_at: null, voided_at: null },
      subscription: null,
      subtotal,
      subtotal_excluding_tax: subtotal,
      test_clock: null,
      total,
      total_discount_amounts: [],
      total_excluding_tax: subtotal,
      total_pretax_credit_amounts: null,
      total_taxes: tax
        ? [
            {
              amount: tax,
              tax_behavior: 'exclusive',
              tax_rate_details: null,
              taxability_reason: 'standard_rated',
              taxable_amount: subtotal,
              type: 'tax_rate_details',
            },
          ]
        : [],
      webhooks_delivered_at: null,
    };
    return inv;
  }

  /** Moves an invoice as Stripe would; a move Stripe does not allow throws (a test's mistake). */
  function moveInvoice(inv: Record<string, any>, status: FakeInvoiceStatus): Record<string, any> {
    const at = Math.floor(Date.now() / 1000);
    const t = inv.status_transitions as Record<string, number | null>;
    if (status !== 'draft' && inv.status === 'draft') {
      invoiceNumber++;
      Object.assign(inv, {
        number: `VEND-${String(invoiceNumber).padStart(4, '0')}`,
        hosted_invoice_url: `https://invoice.stripe.com/i/acct_fake/test_${inv.id}`,
        invoice_pdf: `https://pay.stripe.com/invoice/acct_fake/test_${inv.id}/pdf`,
        effective_at: at,
        due_date: inv.collection_method === 'send_invoice' ? at + 30 * 86400 : null,
      });
      t.finalized_at = at;
    }
    if (status === 'draft' && inv.status !== 'draft') throw new Error(`an invoice that is ${inv.status} cannot become a draft`);
    if (status === 'paid') {
      Object.assign(inv, { amount_paid: inv.amount_due, amount_remaining: 0, attempted: true, attempt_count: Math.max(1, inv.attempt_count) });
      t.paid_at = at;
    }
    if (status === 'void') t.voided_at = at;
    if (status === 'uncollectible') t.marked_uncollectible_at = at;
    if (status === 'open' && inv.status === 'open')
      Object.assign(inv, { attempted: true, attempt_count: inv.attempt_count + 1, next_payment_attempt: at + 3 * 86400 });
    inv.status = status;
    return inv;
  }

  /** An invoice as the API answers it: its first 10 lines, has_more when there are more. */
  const invoiceAnswer = (inv: Record<string, any>) => ({
    ...inv,
    lines: { ...inv.lines, data: inv.lines.data.slice(0, 10), has_more: inv.lines.data.length > 10 },
  });

  /** A page of a list newest first, Stripe's way: `limit`, `starting_after` an id of the previous page. */
  function pageOf<T extends Record<string, any>>(all: T[], q: Record<string, any>, url: string) {
    const limit = Math.min(100, Number(q.limit ?? 10));
    const from = q.starting_after ? all.findIndex((x) => x.id === q.starting_after) + 1 : 0;
    const data = all.slice(from, from + limit);
    return { object: 'list', data, has_more: from + limit < all.length, url };
  }

  /** What the subscription's current period will bring: a line per item, metered quantities from the held meter events. */
  function preview(customer: string, sub: FakeSubscription): Record<string, any> {
    const lines: FakeLineInput[] = sub.items.data.map((item) => {
      const price = prices.get(item.price.id) ?? {};
      const recurring = (price.recurring ?? {}) as Record<string, unknown>;
      const unit = Number(price.unit_amount_decimal ?? price.unit_amount ?? 0);
      const period = { start: item.current_period_start, end: item.current_period_end };
      if (recurring.usage_type === 'metered') {
        const eventName = meters.get(String(recurring.meter))?.event_name;
        let quantity = 0;
        for (const e of held.values()) {
          const at = /^\d+$/.test(e.timestamp) ? Number(e.timestamp) : Date.parse(e.timestamp) / 1000;
          if (e.event_name === eventName && e.payload.stripe_customer_id === customer && at >= period.start && at < period.end)
            quantity += Number(e.payload.value);
        }
        return {
          description: `${quantity} × ${(price.nickname as string | null | undefined) ?? String(eventName)}`,
          quantityDecimal: String(quantity),
          amount: Math.round(quantity * unit),
          price: item.price.id,
          period,
        };
      }
      return { description: `1 × ${(price.nickname as string | null | undefined) ?? item.price.id}`, quantity: 1, amount: unit, price: item.price.id, period };
    });
    const first = sub.items.data[0];
    const inv = invoiceObject({
      id: `upcoming_${id('in')}`,
      customer,
      subscription: sub.id,
      lines,
      period: first ? { start: first.current_period_start, end: first.current_period_end } : undefined,
    });
    inv.billing_reason = 'upcoming';
    return inv;
  }

  const invalid = (message: string, param?: string) => ({
    status: 400,
    body: { error: { type: 'invalid_request_error', code: param ? 'parameter_invalid' : undefined, message, ...(param ? { param } : {}) } },
  });

  /**
   * A price in Stripe's shape (fixtures3.json price): per-unit (unit_amount or unit_amount_decimal)
   * or tiered (billing_scheme=tiered: no unit amount; its tiers are only shown when expanded, so
   * they are not kept), with transform_quantity when given.
   */
  function priceObject(b: Record<string, any>, now: number): Record<string, unknown> {
    const tiered = b.billing_scheme === 'tiered';
    const decimal = tiered ? null : (b.unit_amount_decimal ?? String(Number(b.unit_amount ?? 0)));
    return {
      id: id('price'),
      object: 'price',
      active: true,
      billing_scheme: tiered ? 'tiered' : 'per_unit',
      created: now,
      currency: b.currency ?? 'usd',
      custom_unit_amount: null,
      livemode: false,
      lookup_key: b.lookup_key ?? null,
      metadata: b.metadata ?? {},
      nickname: b.nickname ?? null,
      product: b.product ?? id('prod'),
      recurring: b.recurring ? { interval: 'month', interval_count: 1, meter: null, usage_type: 'licensed', trial_period_days: null, ...b.recurring } : null,
      tax_behavior: b.tax_behavior ?? 'unspecified',
      tiers_mode: tiered ? (b.tiers_mode ?? 'graduated') : null,
      transform_quantity: b.transform_quantity ? { divide_by: Number(b.transform_quantity.divide_by), round: b.transform_quantity.round ?? 'down' } : null,
      type: b.recurring ? 'recurring' : 'one_time',
      // An integer unit amount when the decimal one is whole, as Stripe shows it.
      unit_amount: decimal !== null && /^\d+$/.test(decimal) ? Number(decimal) : null,
      unit_amount_decimal: decimal,
    };
  }

  /**
   * POST /v1/invoiceitems: a pending invoice item for the customer's next invoice (of the subscription
   * when given), in Stripe's shape (fixtures3.json invoiceitem). Priced by `price` (a one-time price
   * only: Stripe refuses a recurring one here) or by price_data, which Stripe makes into an inline
   * price; the amount is unit_amount_decimal x quantity_decimal, rounded to a whole minor unit.
   */
  function createInvoiceItem(b: Record<string, any>, now: number): { status: number; body: unknown } {
    if (!b.customer || !customers.has(b.customer)) return notFound('customer', String(b.customer));
    const sub = b.subscription ? subscriptions.get(b.subscription) : undefined;
    if (b.subscription && !sub) return notFound('subscription', String(b.subscription));
    if (sub && sub.customer !== b.customer) return invalid(`The subscription ${sub.id} does not belong to customer ${b.customer}.`, 'subscription');
    let price: Record<string, unknown>;
    if (b.price !== undefined) {
      const found = prices.get(b.price);
      if (!found) return notFound('price', String(b.price));
      if (found.type === 'recurring')
        return invalid(`The price specified is set to \`type=recurring\` but this field only accepts prices with \`type=one_time\`.`, 'price');
      price = found;
    } else if (b.price_data) {
      const d = b.price_data as Record<string, string>;
      if (!d.currency || !d.product || (d.unit_amount_decimal === undefined && d.unit_amount === undefined)) {
        return invalid('price_data needs currency, product and unit_amount or unit_amount_decimal.', 'price_data');
      }
      price = priceObject({ currency: d.currency, product: d.product, unit_amount_decimal: d.unit_amount_decimal ?? d.unit_amount }, now);
      prices.set(price.id as string, price);
    } else {
      return invalid('Must provide either amount, price or price_data.');
    }
    const quantity = String(b.quantity_decimal ?? b.quantity ?? '1');
    if (!/^\d+(\.\d{1,12})?$/.test(quantity)) return invalid(`Invalid decimal: ${quantity}`, 'quantity_decimal');
    const unit = String(price.unit_amount_decimal);
    const amount = Math.round(Number(unit) * Number(quantity));
    const item = {
      id: id('ii'),
      object: 'invoiceitem',
      amount,
      currency: price.currency,
      customer: b.customer,
      customer_account: null,
      date: now,
      description: b.description ?? null,
      discountable: true,
      discounts: [],
      invoice: null,
      livemode: false,
      metadata: b.metadata ?? {},
      net_amount: amount,
      parent: sub ? { type: 'subscription_details', subscription_details: { subscription: sub.id } } : null,
      period: b.period ? { start: Number(b.period.start), end: Number(b.period.end) } : { start: now, end: now },
      pricing: { type: 'price_details', price_details: { price: price.id, product: price.product }, unit_amount_decimal: unit },
      proration: false,
      quantity: Math.trunc(Number(quantity)),
      quantity_decimal: quantity,
      tax_rates: [],
      test_clock: null,
    };
    invoiceItems.set(item.id, item);
    return { status: 200, body: item };
  }

  function respond(req: RecordedRequest): { status: number; body: unknown } {
    const now = Math.floor(Date.now() / 1000);
    const b = req.body as Record<string, any>;
    let m: RegExpExecArray | null;
    if (req.method === 'POST' && req.path === '/v1/prices') {
      const p = priceObject(b, now);
      prices.set(p.id as string, p);
      return { status: 200, body: p };
    }
    if (req.method === 'POST' && req.path === '/v1/invoiceitems') return createInvoiceItem(b, now);

    if (req.method === 'GET' && (m = /^\/v1\/invoices\/([^/]+)\/lines$/.exec(req.path))) {
      const inv = invoices.get(m[1]!);
      if (!inv) return notFound('invoice', m[1]!);
      return { status: 200, body: pageOf(inv.lines.data as Record<string, any>[], b, `/v1/invoices/${inv.id}/lines`) };
    }
    if (req.method === 'GET' && (m = /^\/v1\/invoices\/([^/]+)$/.exec(req.path)) && m[1] !== 'upcoming') {
      const inv = invoices.get(m[1]!);
      return inv ? { status: 200, body: invoiceAnswer(inv) } : notFound('invoice', m[1]!);
    }
    if (req.method === 'GET' && req.path === '/v1/invoices') {
      const since = b['created[gte]'] !== undefined ? Number(b['created[gte]']) : -Infinity;
      const all = [...invoices.values()]
        .filter((i) => (!b.customer || i.customer === b.customer) && i.created >= since)
        .sort((x, y) => y.created - x.created || (y.id < x.id ? -1 : 1))
        .map(invoiceAnswer);
      return { status: 200, body: pageOf(all, b, '/v1/invoices') };
    }
    if (req.method === 'POST' && req.path === '/v1/invoices/create_preview') {
      if (!b.customer || !customers.has(b.customer)) return notFound('customer', String(b.customer));
      const sub = b.subscription ? subscriptions.get(b.subscription) : undefined;
      if (b.subscription && !sub) return notFound('subscription', b.subscription);
      if (!sub || sub.customer !== b.customer || sub.status === 'canceled') {
        return {
          status: 404,
          body: { error: { type: 'invalid_request_error', code: 'invoice_upcoming_none', message: 'No upcoming invoices for customer: ' + b.customer } },
        };
      }
      return { status: 200, body: preview(b.customer, sub) };
    }
    if (req.method === 'POST' && req.path === '/v1/billing/meters') {
      const meter = {
        id: id('mtr'),
        object: 'billing.meter',
        created: now,
        customer_mapping: { event_payload_key: 'stripe_customer_id', type: 'by_id' },
        default_aggregation: { formula: b.default_aggregation?.formula ?? 'sum' },
        display_name: b.display_name ?? b.event_name,
        event_name: b.event_name,
        event_time_window: null,
        livemode: false,
        status: 'active',
        status_transitions: { deactivated_at: null },
        updated: now,
        value_settings: { event_payload_key: 'value' },
      };
      meters.set(meter.id, meter);
      return { status: 200, body: meter };
    }
    if (req.method === 'POST' && req.path === '/v1/billing_portal/sessions') {
      if (!b.customer || !customers.has(b.customer)) return notFound('customer', String(b.customer));
      if (b.configuration !== undefined && !/^bpc_[A-Za-z0-9]+$/.test(b.configuration))
        return notFound('billing_portal.configuration', String(b.configuration));
      const session: FakePortalSession = {
        id: id('bps'),
        object: 'billing_portal.session',
        configuration: b.configuration ?? 'bpc_default',
        created: now,
        customer: b.customer,
        customer_account: null,
        flow: null,
        livemode: false,
        locale: null,
        on_behalf_of: null,
        return_url: b.return_url ?? null,
        url: `https://billing.stripe.com/p/session/test_${randomBytes(18).toString('base64url')}`,
      };
      portalSessions.push(session);
      return { status: 200, body: session };
    }
    for (const [path, store, what] of [
      ['prices', prices, 'price'],
      ['events', events as Map<string, unknown>, 'event'],
    ] as const) {
      if (req.method === 'GET' && (m = new RegExp(`^/v1/${path}/([^/]+)$`).exec(req.path))) {
        const found = store.get(m[1]!);
        return found ? { status: 200, body: found } : notFound(what, m[1]!);
      }
    }
    if (req.method === 'POST' && req.path === '/v1/customers') {
      const c = { id: id('cus'), object: 'customer', email: b.email ?? null, name: b.name ?? null, metadata: b.metadata ?? {}, created: now };
      customers.set(c.id, c);
      return { status: 200, body: c };
    }
    if ((m = /^\/v1\/customers\/([^/]+)$/.exec(req.path))) {
      const c = customers.get(m[1]!);
      if (!c) return notFound('customer', m[1]!);
      if (req.method === 'POST') Object.assign(c, b);
      return { status: 200, body: c };
    }
    if (req.method === 'POST' && req.path === '/v1/subscriptions') {
      if (!customers.has(b.customer)) return notFound('customer', b.customer);
      const trial = b.trial_period_days ? Number(b.trial_period_days) * 86400 : 0;
      const sub: FakeSubscription = {
        id: id('sub'),
        object: 'subscription',
        customer: b.customer,
        status: trial ? 'trialing' : 'active',
        cancel_at_period_end: false,
        canceled_at: null,
        trial_end: trial ? now + trial : null,
        created: now,
        metadata: b.metadata ?? {},
        items: {
          object: 'list',
          data: (b.items as { price: string }[]).map((i) => ({
            id: id('si'),
            object: 'subscription_item',
            price: { id: i.price, object: 'price' },
            current_period_start: now,
            current_period_end: now + (trial || MONTH),
          })),
        },
      };
      subscriptions.set(sub.id, sub);
      return { status: 200, body: sub };
    }
    if (req.method === 'GET' && req.path === '/v1/subscriptions') {
      const data = [...subscriptions.values()].filter((s) => !b.customer || s.customer === b.customer);
      return { status: 200, body: { object: 'list', data, has_more: false, url: '/v1/subscriptions' } };
    }
    if ((m = /^\/v1\/subscriptions\/([^/]+)$/.exec(req.path))) {
      const sub = subscriptions.get(m[1]!);
      if (!sub) return notFound('subscription', m[1]!);
      if (req.method === 'DELETE') {
        Object.assign(sub, { status: 'canceled', canceled_at: now, cancel_at_period_end: false });
      } else if (req.method === 'POST') {
        if (b.cancel_at_period_end !== undefined) sub.cancel_at_period_end = b.cancel_at_period_end === 'true';
        for (const item of (b.items ?? []) as { id?: string; price?: string; deleted?: string }[]) {
          const existing = sub.items.data.find((i) => i.id === item.id);
          if (existing && item.deleted === 'true') sub.items.data = sub.items.data.filter((i) => i !== existing);
          else if (existing && item.price) existing.price = { id: item.price, object: 'price' };
          else if (item.price)
            sub.items.data.push({
              id: id('si'),
              object: 'subscription_item',
              price: { id: item.price, object: 'price' },
              current_period_start: now,
              current_period_end: now + MONTH,
            });
        }
        if (b.metadata) Object.assign(sub.metadata, b.metadata);
      }
      return { status: 200, body: sub };
    }
    if (req.method === 'POST' && req.path === '/v2/billing/meter_event_session') {
      const token = id('mets');
      sessions.set(token, Date.now() + sessionTtlMs);
      sessionsCreated++;
      return {
        status: 200,
        body: {
          id: id('mes'),
          object: 'v2.billing.meter_event_session',
          authentication_token: token,
          created: new Date().toISOString(),
          expires_at: new Date(Date.now() + sessionTtlMs).toISOString(),
          livemode: false,
        },
      };
    }
    if (req.method === 'POST' && req.path === '/v2/billing/meter_event_stream') {
      const token = /^Bearer (.+)$/.exec(req.authorization ?? '')?.[1] ?? '';
      const expiresAt = sessions.get(token);
      if (expiresAt === undefined)
        return { status: 401, body: { error: { type: 'invalid_request_error', code: 'unauthorized', message: 'Invalid authentication token.' } } };
      if (expiresAt <= Date.now()) {
        return {
          status: 401,
          body: {
            error: {
              type: 'temporary_session_expired',
              code: 'billing_meter_event_session_expired',
              message: 'Your meter event session has expired; create a new one.',
            },
          },
        };
      }
      const events = (b.events ?? []) as { event_name?: string; identifier?: string; payload?: Record<string, string>; timestamp?: string }[];
      if (!Array.isArray(events) || events.length === 0 || events.length > 100 || events.some((e) => !e.event_name || !e.payload)) {
        return {
          status: 400,
          body: {
            error: { type: 'invalid_request_error', code: 'invalid_fields', message: 'events: between 1 and 100 events, each with event_name and payload.' },
          },
        };
      }
      for (const e of events)
        hold({ identifier: e.identifier, event_name: e.event_name!, payload: e.payload!, timestamp: e.timestamp ?? new Date().toISOString(), via: 'stream' });
      return { status: 200, body: {} };
    }
    if (req.method === 'POST' && req.path === '/v1/billing/meter_events') {
      if (!b.event_name || !b.payload?.stripe_customer_id || b.payload.value === undefined) {
        return { status: 400, body: { error: { type: 'invalid_request_error', message: 'Missing required param: event_name or payload.' } } };
      }
      hold({ identifier: b.identifier, event_name: b.event_name, payload: b.payload, timestamp: String(b.timestamp ?? now), via: 'v1' });
      return {
        status: 200,
        body: {
          object: 'billing.meter_event',
          created: now,
          event_name: b.event_name,
          identifier: b.identifier ?? id('mev'),
          livemode: false,
          payload: b.payload,
          timestamp: Number(b.timestamp ?? now),
        },
      };
    }
    return { status: 404, body: { error: { type: 'invalid_request_error', message: `Unrecognized request URL (${req.method}: ${req.path}).` } } };
  }

  const server = http.createServer((httpReq, res) => {
    let text = '';
    httpReq.on('data', (d) => (text += d));
    httpReq.on('end', () => {
      const url = new URL(httpReq.url ?? '/', 'http://fake');
      const rec: RecordedRequest = {
        method: httpReq.method ?? 'GET',
        path: url.pathname,
        idempotencyKey: httpReq.headers['idempotency-key'] as string | undefined,
        stripeVersion: httpReq.headers['stripe-version'] as string | undefined,
        authorization: httpReq.headers.authorization,
        body:
          httpReq.method === 'GET'
            ? Object.fromEntries(url.searchParams)
            : String(httpReq.headers['content-type']).startsWith('application/json')
              ? (JSON.parse(text || '{}') as Record<string, unknown>)
              : decodeForm(text),
        at: Date.now(),
      };
      requests.push(rec);

      const planned = once.find((f) => f.left > 0 && f.path.test(rec.path));
      if (planned) planned.left--;
      const chance = randomly.find((f) => f.path.test(rec.path) && Math.random() < f.rate);
      const failure =
        planned?.failure ?? always.find((f) => f.path.test(rec.path))?.failure ?? chance?.failures[Math.floor(Math.random() * chance.failures.length)];
      if (failure === 'stall') {
        stalled.add(res);
        res.on('close', () => stalled.delete(res));
        return; // never answers: the client times out
      }
      let reply: { status: number; body: unknown };
      if (failure === 'drop') {
        const k = `${rec.path} ${rec.idempotencyKey}`;
        if (!rec.idempotencyKey || !idempotent.has(k)) {
          const done = respond(rec);
          if (rec.idempotencyKey) idempotent.set(k, done);
        }
        stalled.add(res);
        res.on('close', () => stalled.delete(res));
        return;
      }
      if (failure) {
        reply = { status: failure.status, body: { error: { type: failure.type ?? 'api_error', message: failure.message ?? 'Injected failure' } } };
      } else if (rec.idempotencyKey && idempotent.has(`${rec.path} ${rec.idempotencyKey}`)) {
        reply = idempotent.get(`${rec.path} ${rec.idempotencyKey}`)!;
      } else {
        reply = respond(rec);
        if (rec.idempotencyKey && reply.status < 500 && reply.status !== 401) idempotent.set(`${rec.path} ${rec.idempotencyKey}`, reply);
      }
      const answer = () => {
        if (res.destroyed) return;
        res.writeHead(reply.status, { 'Content-Type': 'application/json', 'Request-Id': id('req') });
        res.end(JSON.stringify(reply.body));
      };
      const [min, max] = latency;
      if (max <= 0) return answer();
      stalled.add(res);
      res.on('close', () => stalled.delete(res));
      setTimeout(answer, min + Math.random() * (max - min));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    held,
    duplicates: () => duplicates,
    sessionsCreated: () => sessionsCreated,
    setSessionTtl(ms) {
      sessionTtlMs = ms;
    },
    expireSessions() {
      for (const token of sessions.keys()) sessions.set(token, 0);
    },
    setLatency(minMs, maxMs) {
      latency = [minMs, maxMs];
    },
    failRandomly(path, rate, failures) {
      randomly.push({ path, rate, failures });
    },
    streamCalls: () => requests.filter((r) => r.method === 'POST' && r.path === '/v2/billing/meter_event_stream'),
    requests,
    customers,
    subscriptions,
    prices,
    invoiceItems,
    invoiceItemCalls: () => requests.filter((r) => r.method === 'POST' && r.path === '/v1/invoiceitems'),
    invoices,
    event(type, object, created = ++eventClock) {
      const e: FakeEvent = {
        id: id('evt'),
        object: 'event',
        api_version: '2026-10-28.endive',
        created,
        livemode: false,
        pending_webhooks: 1,
        type,
        data: { object },
      };
      events.set(e.id, e);
      return e;
    },
    invoice(subscriptionId, status) {
      const sub = subscriptions.get(subscriptionId);
      const lines: FakeLineInput[] = (sub?.items.data ?? []).map((item) => ({
        description: `1 × ${item.price.id}`,
        quantity: 1,
        amount: Number(prices.get(item.price.id)?.unit_amount ?? 4900),
        price: item.price.id,
        period: { start: item.current_period_start, end: item.current_period_end },
      }));
      const inv = invoiceObject({
        customer: sub?.customer ?? id('cus'),
        subscription: subscriptionId,
        lines: lines.length ? lines : [{ amount: 4900, quantity: 1 }],
      });
      invoices.set(inv.id, inv);
      return status === 'draft' ? inv : moveInvoice(inv, status);
    },
    createInvoice(input) {
      const inv = invoiceObject(input);
      invoices.set(inv.id, inv);
      return !input.status || input.status === 'draft' ? inv : moveInvoice(inv, input.status);
    },
    setInvoiceStatus(invoiceId, status) {
      const inv = invoices.get(invoiceId);
      if (!inv) throw new Error(`no fake invoice ${invoiceId}`);
      return moveInvoice(inv, status);
    },
    meters,
    portalSessions,
    previewCalls: () => requests.filter((r) => r.method === 'POST' && r.path === '/v1/invoices/create_preview'),
    setSubscription(subId, patch) {
      const sub = subscriptions.get(subId);
      if (!sub) throw new Error(`no fake subscription ${subId}`);
      return Object.assign(sub, patch);
    },
    failNext(path, times, failure) {
      once.push({ path, left: times, failure });
    },
    failAlways(path, failure) {
      always.push({ path, failure });
    },
    clearFailures() {
      once = [];
      always = [];
      randomly = [];
      latency = [0, 0];
    },
    meterEvents: () => requests.filter((r) => r.method === 'POST' && r.path === '/v1/billing/meter_events'),
    async close() {
      for (const res of stalled) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
