import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';

interface Stored {
  id: string;
  body: string;
}

type Scripted = { status: number; body: unknown; headers?: Record<string, string> };

/**
 * POST /api/usage as the service answers it (batches all or nothing, replays by key, 409 for a key
 * with another body, 422 naming bad items by index), with answers that can be scripted first.
 */
export class FakeUsageService {
  readonly stored = new Map<string, Stored>();
  /** Every batch received, as the list of its keys. */
  readonly requests: string[][] = [];
  /** When each batch arrived (Date.now()), in order. */
  readonly times: number[] = [];
  readonly script: Scripted[] = [];
  /** Headers added to every answer that is not scripted (RateLimit, say). */
  answerHeaders: Record<string, string> = {};
  /** Metrics refused with a 422 naming the item. */
  refuseMetric = 'bad_metric';
  /** Held before answering (to test a send under way). */
  delayMs = 0;
  private server: http.Server | null = null;
  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(port = 0): Promise<void> {
    this.server = http.createServer((req, res) => {
      let text = '';
      req.on('data', (d) => (text += d));
      req.on('end', () => void this.answer(req, text, res));
    });
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  }

  private async answer(req: http.IncomingMessage, text: string, res: http.ServerResponse): Promise<void> {
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', 'x-request-id': randomUUID(), ...headers });
      res.end(JSON.stringify(body));
    };
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    if (req.headers['x-api-key'] !== 'test-key') return send(401, { error: { code: 'UNAUTHORIZED', message: 'no' } });
    const events = (JSON.parse(text) as { events: { metric: string; idempotency_key: string }[] }).events;
    this.requests.push(events.map((e) => e.idempotency_key));
    this.times.push(Date.now());
    const scripted = this.script.shift();
    if (scripted) return send(scripted.status, scripted.body, scripted.headers);
    const bad = events.flatMap((e, index) =>
      e.metric === this.refuseMetric ? [{ index, path: `events.${index}.metric`, message: 'must be one of: api_calls' }] : [],
    );
    if (bad.length) return send(422, { error: { code: 'VALIDATION_FAILED', message: 'Invalid request body', details: bad } });
    for (const e of events) {
      const had = this.stored.get(e.idempotency_key);
      if (had && had.body !== JSON.stringify(e))
        return send(409, { error: { code: 'IDEMPOTENCY_CONFLICT', message: 'This idempotency key was already used with a different event' } });
    }
    const out = events.map((e) => {
      const had = this.stored.get(e.idempotency_key);
      if (had) return { id: had.id, idempotency_key: e.idempotency_key, replayed: true };
      const id = randomUUID();
      this.stored.set(e.idempotency_key, { id, body: JSON.stringify(e) });
      return { id, idempotency_key: e.idempotency_key, replayed: false };
    });
    const created = out.filter((o) => !o.replayed).length;
    send(
      created ? 201 : 200,
      { created, replayed: out.length - created, events: out },
      {
        ...this.answerHeaders,
        ...(created ? {} : { 'Idempotent-Replayed': 'true' }),
      },
    );
  }
}
