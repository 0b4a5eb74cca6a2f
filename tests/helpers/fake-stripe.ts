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
  invoices: Map<string, Record<string, unknown>>;
  /** Builds an event in Stripe's shape and keeps it, so GET /v1/events/:id serves it. */
  event(type: string, object: Record<string, unknown>, created?: number): FakeEvent;
  /** An invoice of a subscription, in the API 2025-03-31+ shape (parent.subscription_details). */
  invoice(subscriptionId: string, status: 'open' | 'paid'): Record<string, unknown>;
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
  const invoices = new Map<string, Record<string, unknown>>();
  const events = new Map<string, FakeEvent>();
  let eventClock = Math.floor(Date.now() / 1000);
  const notFound = (what: string, key: string) => ({
    status: 404,
    body: { error: { type: 'invalid_request_error', code: 'resource_missing', message: `No such ${what}: '${key}'` } },
  });
  const MONTH = 30 * 86400;

  function respond(req: RecordedRequest): { status: number; body: unknown } {
    const now = Math.floor(Date.now() / 1000);
    const b = req.body as Record<string, any>;
    let m: RegExpExecArray | null;
    if (req.method === 'POST' && req.path === '/v1/prices') {
      const p = {
        id: id('price'),
        object: 'price',
        active: true,
        currency: b.currency ?? 'usd',
        unit_amount: Number(b.unit_amount ?? 0),
        recurring: b.recurring ?? null,
        product: b.product ?? id('prod'),
        created: now,
      };
      prices.set(p.id, p);
      return { status: 200, body: p };
    }
    for (const [path, store, what] of [
      ['prices', prices, 'price'],
      ['invoices', invoices, 'invoice'],
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
      const inv = {
        id: id('in'),
        object: 'invoice',
        customer: sub?.customer ?? null,
        status,
        paid: status === 'paid',
        amount_due: 4900,
        currency: 'usd',
        parent: { type: 'subscription_details', subscription_details: { subscription: subscriptionId, metadata: {} } },
        created: Math.floor(Date.now() / 1000),
      };
      invoices.set(inv.id, inv);
      return inv;
    },
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
