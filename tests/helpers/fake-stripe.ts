/**
 * A small fake of Stripe's HTTP API for tests: the real stripe-node client talks to it through
 * its host/port/protocol options. It records every request (method, path, idempotency key,
 * decoded form body), serves objects shaped like Stripe's, and can be told to fail or stall.
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

type Failure = { status: number; type?: string; message?: string } | 'stall';

export interface FakeStripe {
  url: string;
  requests: RecordedRequest[];
  /** The next `times` requests to paths matching `path` fail this way. */
  failNext(path: RegExp, times: number, failure: Failure): void;
  /** Every request to a matching path fails this way until cleared. */
  failAlways(path: RegExp, failure: Failure): void;
  clearFailures(): void;
  meterEvents(): RecordedRequest[];
  close(): Promise<void>;
}

/** Decodes stripe-node's form encoding (a[b][c]=v, a[0]=v) into nested objects. */
export function decodeForm(text: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [rawKey, value] of new URLSearchParams(text)) {
    const parts = rawKey.split(/\[|\]\[|\]/).filter((p) => p !== '');
    let node = out as Record<string, unknown>;
    parts.forEach((p, i) => {
      if (i === parts.length - 1) node[p] = value;
      else node = (node[p] ??= {}) as Record<string, unknown>;
    });
  }
  return out;
}

const id = (prefix: string) => `${prefix}_${randomBytes(12).toString('hex')}`;

export async function startFakeStripe(): Promise<FakeStripe> {
  const requests: RecordedRequest[] = [];
  let once: { path: RegExp; left: number; failure: Failure }[] = [];
  let always: { path: RegExp; failure: Failure }[] = [];
  const stalled = new Set<http.ServerResponse>();
  // Stripe replays the first response for a repeated idempotency key.
  const idempotent = new Map<string, { status: number; body: unknown }>();

  function respond(req: RecordedRequest): { status: number; body: unknown } {
    const now = Math.floor(Date.now() / 1000);
    if (req.method === 'POST' && req.path === '/v1/billing/meter_events') {
      const b = req.body as { event_name?: string; identifier?: string; timestamp?: string; payload?: Record<string, string> };
      if (!b.event_name || !b.payload?.stripe_customer_id || b.payload.value === undefined) {
        return { status: 400, body: { error: { type: 'invalid_request_error', message: 'Missing required param: event_name or payload.' } } };
      }
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
        body: httpReq.method === 'GET' ? Object.fromEntries(url.searchParams) : decodeForm(text),
        at: Date.now(),
      };
      requests.push(rec);

      const planned = once.find((f) => f.left > 0 && f.path.test(rec.path));
      if (planned) planned.left--;
      const failure = planned?.failure ?? always.find((f) => f.path.test(rec.path))?.failure;
      if (failure === 'stall') {
        stalled.add(res);
        res.on('close', () => stalled.delete(res));
        return; // never answers: the client times out
      }
      let reply: { status: number; body: unknown };
      if (failure) {
        reply = { status: failure.status, body: { error: { type: failure.type ?? 'api_error', message: failure.message ?? 'Injected failure' } } };
      } else if (rec.idempotencyKey && idempotent.has(`${rec.path} ${rec.idempotencyKey}`)) {
        reply = idempotent.get(`${rec.path} ${rec.idempotencyKey}`)!;
      } else {
        reply = respond(rec);
        if (rec.idempotencyKey && reply.status < 500) idempotent.set(`${rec.path} ${rec.idempotencyKey}`, reply);
      }
      res.writeHead(reply.status, { 'Content-Type': 'application/json', 'Request-Id': id('req') });
      res.end(JSON.stringify(reply.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    failNext(path, times, failure) {
      once.push({ path, left: times, failure });
    },
    failAlways(path, failure) {
      always.push({ path, failure });
    },
    clearFailures() {
      once = [];
      always = [];
    },
    meterEvents: () => requests.filter((r) => r.method === 'POST' && r.path === '/v1/billing/meter_events'),
    async close() {
      for (const res of stalled) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
