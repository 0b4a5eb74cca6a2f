/**
 * For the webhook delivery tests: endpoints inserted directly (a row and its sealed secret, no
 * creation checks, so a test can store any URL), a real receiver that verifies every request with
 * the standardwebhooks package, and workers built from a test app's container. Events: factories.ts
 * (emitEvents); endpoints made through the API: factories.ts (createWebhookEndpoint).
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { createDeliveryWorker, type DeliveryWorker } from '../../src/modules/webhooks/delivery-worker';
import { uuidv7 } from '../../src/lib/ids';
import { newSigningSecret } from '../../src/modules/webhooks/webhook-endpoints-service';
import type { TestApp } from './test-app';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 15_000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

export interface InsertedEndpoint {
  id: string;
  secret: string;
  url: string;
}

/** An endpoint row and its sealed current secret (plus optional older ones), inserted directly; its id a UUIDv7, as the service makes them (lists are newest first by id). */
export async function insertEndpoint(
  t: TestApp,
  opts: { url: string; events?: string[]; secret?: string; extraSecrets?: { secret: string; expiresInMs: number }[]; disabled?: boolean },
): Promise<InsertedEndpoint> {
  const id = uuidv7();
  const secret = opts.secret ?? newSigningSecret();
  await t.db('webhook_endpoints').insert({ id, url: opts.url, events: opts.events ?? ['*'], description: 'test receiver' });
  if (opts.disabled) await t.db('webhook_endpoints').where({ id }).update({ disabled: true, disabled_reason: 'admin', disabled_at: t.db.fn.now() });
  await t.db('webhook_endpoint_secrets').insert({ id: uuidv7(), endpoint_id: id, ciphertext: t.c.secretBox.seal(secret, id) });
  for (const extra of opts.extraSecrets ?? []) {
    await t.db('webhook_endpoint_secrets').insert({
      id: uuidv7(),
      endpoint_id: id,
      ciphertext: t.c.secretBox.seal(extra.secret, id),
      expires_at: t.db.raw(`now() + make_interval(secs => ?)`, [extra.expiresInMs / 1000]),
    });
  }
  return { id, secret, url: opts.url };
}

/** Endpoints other test files left behind: out of the way (the files share one database, one at a time). */
export async function disableOtherEndpoints(t: TestApp): Promise<void> {
  await t.db('webhook_endpoints').where({ disabled: false }).update({ disabled: true, disabled_reason: 'admin', disabled_at: t.db.fn.now() });
}

export interface Received {
  id: string;
  timestamp: string;
  signature: string;
  body: string;
  headers: http.IncomingHttpHeaders;
  /** The standardwebhooks package's verdict with the receiver's secret: null when it verified. */
  verifyError: string | null;
  at: number;
}

export type Behaviour = (r: {
  id: string;
  count: number;
}) => { status: number; body?: string; delayMs?: number; headers?: Record<string, string> } | 'hang' | 'reset' | { trickleMs: number };

export interface Receiver {
  url: string;
  port: number;
  /** Every request that arrived (whether or not it verified). */
  received: Received[];
  /** Verified request ids, with how many times each came. */
  counts(): Map<string, number>;
  behave(b: Behaviour): void;
  /** The secrets it verifies with (the first that verifies wins). */
  secrets: string[];
  close(): Promise<void>;
}

/** A webhook receiver on 127.0.0.1: verifies each request with standardwebhooks, then behaves as told (200 by default). */
export async function startReceiver(secrets: string[] = []): Promise<Receiver> {
  const received: Received[] = [];
  const perId = new Map<string, number>();
  let behaviour: Behaviour = () => ({ status: 200, body: 'ok' });
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const headers = req.headers;
      let verifyError: string | null = 'no secret';
      for (const s of r.secrets) {
        try {
          new Webhook(s).verify(body, headers as Record<string, string>);
          verifyError = null;
          break;
        } catch (err) {
          verifyError = (err as Error).message;
        }
      }
      const id = String(headers['webhook-id'] ?? '');
      received.push({
        id,
        timestamp: String(headers['webhook-timestamp'] ?? ''),
        signature: String(headers['webhook-signature'] ?? ''),
        body,
        headers,
        verifyError,
        at: Date.now(),
      });
      const count = (perId.get(id) ?? 0) + 1;
      perId.set(id, count);
      const b = behaviour({ id, count });
      if (b === 'hang') return;
      if (b === 'reset') {
        req.socket.destroy();
        return;
      }
      if ('trickleMs' in b) {
        res.writeHead(200, { 'content-type': 'text/plain' });
        const timer = setInterval(() => res.write('.'), b.trickleMs);
        res.on('close', () => clearInterval(timer));
        return;
      }
      const answer = () => {
        res.writeHead(b.status, { 'content-type': 'text/plain', ...(b.headers ?? {}) });
        res.end(b.body ?? '');
      };
      if (b.delayMs) setTimeout(answer, b.delayMs);
      else answer();
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const r: Receiver = {
    url: `http://127.0.0.1:${port}/hooks`,
    port,
    received,
    secrets,
    counts() {
      const n = new Map<string, number>();
      for (const x of received) if (x.verifyError === null) n.set(x.id, (n.get(x.id) ?? 0) + 1);
      return n;
    },
    behave(b) {
      behaviour = b;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return r;
}

/** A receiver for an endpoint: the receiver knows the endpoint's secret. */
export async function endpointWithReceiver(t: TestApp, events: string[] = ['*']): Promise<InsertedEndpoint & { receiver: Receiver }> {
  const receiver = await startReceiver();
  const ep = await insertEndpoint(t, { url: receiver.url, events });
  receiver.secrets.push(ep.secret);
  return { ...ep, receiver };
}

/** A delivery worker on a test app's services, with short leases and polls for tests. */
export function newWorker(
  t: TestApp,
  opts: { leaseSeconds?: number; pollMs?: number; concurrency?: number; endpointConcurrency?: number } = {},
): DeliveryWorker {
  return createDeliveryWorker({
    db: t.db,
    deliveries: t.c.deliveries,
    logger: t.c.logger,
    settings: {
      ...t.c.config.webhooks,
      ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
      ...(opts.endpointConcurrency ? { endpointConcurrency: opts.endpointConcurrency } : {}),
    },
    leaseSeconds: opts.leaseSeconds ?? 5,
    pollMs: opts.pollMs ?? 100,
  });
}

/** Deliveries of these events to this endpoint, by state. */
export async function deliveryStates(t: TestApp, endpointId: string, eventIds: string[]): Promise<Record<string, number>> {
  const rows = await t.db('webhook_deliveries').where({ endpoint_id: endpointId }).whereIn('event_id', eventIds).select('state');
  const out: Record<string, number> = {};
  for (const r of rows) out[r.state] = (out[r.state] ?? 0) + 1;
  return out;
}

/** One key for every app of a test file: instances share it, as they do in production. */
const SECRETS_KEY = randomBytes(32).toString('base64');

export const webhookEnv = (extra: Record<string, string> = {}) => ({
  WEBHOOK_SECRETS_KEY: SECRETS_KEY,
  WEBHOOK_ALLOW_PRIVATE: 'true',
  WEBHOOK_ALLOW_HTTP: 'true',
  WEBHOOK_TIMEOUT: '2s',
  WEBHOOK_RETRY_SCHEDULE: '1s,1s,1s,1s,1s',
  ...extra,
});
