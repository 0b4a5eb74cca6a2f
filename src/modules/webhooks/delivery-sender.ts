import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { Webhook } from 'standardwebhooks';
import { eventJson } from '../events/events-schemas';
import { lookupFor, urlProblem, type DestinationPolicy } from './destination-policy';

/** What the receiver is sent: the event exactly as GET /api/events/:id shows it. */
export interface DeliveryMessage {
  url: string;
  event: { id: string; type: string; customerId: string | null; data: Record<string, unknown>; createdAt: Date };
  /** The endpoint's signing secrets in force (`whsec_…`): one signature each. */
  secrets: readonly string[];
}

export interface SendResult {
  outcome: 'delivered' | 'failed';
  status: number | null;
  durationMs: number;
  /** The first 1 kB of the answer. */
  responseBody: string | null;
  error: string | null;
}

export interface SenderOptions {
  policy: DestinationPolicy;
  timeoutMs: number;
  /** DNS for the connection-time check (tests inject one). */
  resolve?: typeof dns.lookup;
  now?: () => number;
}

/** Answers are read up to this much; the first STORED_BODY_BYTES of it are kept. */
export const MAX_ANSWER_BYTES = 64 * 1024;
export const STORED_BODY_BYTES = 1024;
const USER_AGENT = `billing-service-webhooks/${process.env.npm_package_version ?? '0.1.0'}`;

/** The body: the event exactly as the events API shows it (one function shapes both). */
export const eventBody = (e: DeliveryMessage['event']): string => JSON.stringify(eventJson(e));

/** `v1,<base64 HMAC-SHA256>` for each secret, space-separated (Standard Webhooks), by the standardwebhooks package. */
export function signatureHeader(secrets: readonly string[], msgId: string, at: Date, body: string): string {
  return secrets.map((s) => new Webhook(s).sign(msgId, at, body)).join(' ');
}

const ERROR_WORDS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset by the receiver',
  EPIPE: 'connection closed by the receiver while sending',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host lookup failed (temporary)',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  EFORBIDDENDESTINATION: 'destination refused',
};

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { code?: string };
  const code = e?.code;
  if (code === 'EFORBIDDENDESTINATION') return `destination refused: ${e.message}`;
  const words = code ? ERROR_WORDS[code] : undefined;
  if (words) return `${words} (${code})`;
  if (code && /^(ERR_TLS|CERT_|UNABLE_TO|DEPTH_ZERO|SELF_SIGNED|ERR_SSL)/.test(code)) return `TLS failed: ${e.message} (${code})`;
  return e?.message ? String(e.message).slice(0, 300) : String(err).slice(0, 300);
}

/** What PostgreSQL's text can hold: valid UTF-8 without NUL. */
const storable = (buf: Buffer): string => buf.subarray(0, STORED_BODY_BYTES).toString('utf8').replace(/\0/g, '');

/**
 * Makes one delivery attempt over node's http/https: the URL checked again (https unless allowed,
 * no credentials, a literal address must be public), the host resolved once for the connection and
 * every address checked there (lookupFor: the connection goes to the address checked), no redirect
 * followed (a 3xx is a failure), and the whole attempt (connect, send, the answer up to 64 kB)
 * bounded by the timeout: a receiver that trickles its answer is cut at the deadline. Never throws.
 */
export function createSender(opts: SenderOptions) {
  const lookup = lookupFor(opts.policy, opts.resolve);
  const now = opts.now ?? Date.now;
  // Keep-alive per instance: a connection is made (and its address checked) once, then reused.
  const agents = {
    'http:': new http.Agent({ keepAlive: true, lookup, maxFreeSockets: 64 }),
    'https:': new https.Agent({ keepAlive: true, lookup, maxFreeSockets: 64 }),
  };

  async function send(message: DeliveryMessage): Promise<SendResult> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    const fail = (error: string, status: number | null = null, responseBody: string | null = null): SendResult => ({
      outcome: 'failed',
      status,
      durationMs: elapsed(),
      responseBody,
      error,
    });
    const problem = urlProblem(message.url, opts.policy);
    if (problem) return fail(`destination refused: the URL ${problem}`);
    if (message.secrets.length === 0) return fail('the endpoint has no signing secret in force');
    const url = new URL(message.url);
    const body = eventBody(message.event);
    const at = new Date(now());
    const headers = {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
      'user-agent': USER_AGENT,
      'webhook-id': message.event.id,
      'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
      'webhook-signature': signatureHeader(message.secrets, message.event.id, at, body),
    };
    const transport = url.protocol === 'https:' ? https : http;
    return new Promise<SendResult>((resolve) => {
      let settled = false;
      const finish = (r: SendResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        resolve(r);
      };
      const req = transport.request(url, { method: 'POST', headers, agent: agents[url.protocol as 'http:' | 'https:'], lookup });
      const deadline = setTimeout(() => {
        finish(fail(`timed out after ${opts.timeoutMs} ms`));
        req.destroy();
      }, opts.timeoutMs);
      req.on('error', (err) => finish(fail(describe(err))));
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        const chunks: Buffer[] = [];
        let size = 0;
        const done = () => {
          const answer = Buffer.concat(chunks);
          const responseBody = answer.length > 0 ? storable(answer) : null;
          if (status >= 200 && status < 300) finish({ outcome: 'delivered', status, durationMs: elapsed(), responseBody, error: null });
          else if (status >= 300 && status < 400) {
            const location = typeof res.headers.location === 'string' ? ` to ${res.headers.location.slice(0, 200)}` : '';
            finish(fail(`redirect (${status}${location}) not followed`, status, responseBody));
          } else finish(fail(`HTTP ${status}`, status, responseBody));
        };
        res.on('data', (chunk: Buffer) => {
          if (settled) return;
          // Only what is stored is kept in memory; the rest of the 64 kB is counted, not held.
          const keep = STORED_BODY_BYTES - Math.min(size, STORED_BODY_BYTES);
          if (keep > 0) chunks.push(chunk.subarray(0, keep));
          size += Math.min(chunk.length, MAX_ANSWER_BYTES - size);
          // Enough read: the rest is not waited for, and the connection not reused.
          if (size >= MAX_ANSWER_BYTES) {
            done();
            res.destroy();
          }
        });
        res.on('end', done);
        res.on('error', (err) => finish(fail(`answer cut off: ${describe(err)}`, status)));
        res.on('close', () => {
          if (!res.complete) finish(fail('answer cut off by the receiver', status));
        });
      });
      req.end(body);
    });
  }

  return {
    send,
    close(): void {
      agents['http:'].destroy();
      agents['https:'].destroy();
    },
  };
}

export type Sender = ReturnType<typeof createSender>;
