/**
 * Loads usage through the batch API as bench:scale and bench:console do: one customer per batch in
 * turn, `concurrency` requests in flight. Each event: metric api_calls, storage_gb or seats; quantity
 * 1..100; a 20-character idempotency key (8 hex digits of the customer id, a dash, an 11-digit
 * counter); occurred_at over the 30 days before the load began, in arrival order with up to 5
 * minutes of lateness (as live traffic arrives), or uniformly at random (`randomTimes`, a backfill).
 */
import type { CreatedCustomer } from '../tests/helpers/factories';

export const METRICS = ['api_calls', 'storage_gb', 'seats'];
const DAY = 86_400_000;
const SPAN = 30 * DAY;
const LATENESS = 5 * 60_000;
const fmt = (n: number) => n.toLocaleString('en-US');

export interface Event {
  metric: string;
  quantity: number;
  occurred_at: string;
  idempotency_key: string;
}

/** A customer's nth key: 20 characters, as a client's own counter would make them. */
export const keyOf = (c: CreatedCustomer, n: number) => `${c.id.slice(-8)}-${String(n).padStart(11, '0')}`;

export async function send(base: string, apiKey: string, events: Event[]): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  const res = await fetch(`${base}/api/usage`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-API-Key': apiKey },
    body: JSON.stringify({ events }),
  });
  const text = await res.text();
  if (res.status !== 201 && res.status !== 200) throw new Error(`POST /api/usage: ${res.status} ${text.slice(0, 300)}`);
  return { status: res.status, ms: performance.now() - started };
}

export interface Load {
  customers: CreatedCustomer[];
  /** The last key number used, per customer. */
  counters: number[];
  batch: number;
  /** The first batch sent, kept to be replayed. */
  sample?: { customer: CreatedCustomer; events: Event[] };
}

/** Sends events from..to (batches of load.batch, CONCURRENCY in flight); the wall-clock ms and the retries. */
export async function loadEvents(
  base: string,
  load: Load,
  from: number,
  to: number,
  opts: { concurrency: number; randomTimes?: boolean; log: (line: string) => void },
): Promise<{ ms: number; retries: number }> {
  const { log } = opts;
  const n = to - from;
  const batches = Math.ceil(n / load.batch);
  const windowStart = Date.now() - SPAN;
  let next = 0;
  let retries = 0;
  let done = 0;
  let reported = 0;
  const started = performance.now();
  const worker = async () => {
    for (let b = next++; b < batches; b = next++) {
      const ci = b % load.customers.length;
      const customer = load.customers[ci]!;
      const first = b * load.batch;
      const size = Math.min(load.batch, n - first);
      const events = new Array<Event>(size);
      for (let k = 0; k < size; k++) {
        const at = opts.randomTimes
          ? windowStart + Math.random() * SPAN
          : Math.max(windowStart, windowStart + ((first + k) / n) * SPAN - Math.random() * LATENESS);
        events[k] = {
          metric: METRICS[Math.floor(Math.random() * METRICS.length)]!,
          quantity: 1 + Math.floor(Math.random() * 100),
          occurred_at: new Date(at).toISOString(),
          idempotency_key: keyOf(customer, (load.counters[ci] = (load.counters[ci] ?? 0) + 1)),
        };
      }
      load.sample ??= { customer, events };
      for (let attempt = 1; ; attempt++) {
        try {
          await send(base, customer.apiKey, events); // a retry of a stored batch is a replay (200)
          break;
        } catch (err) {
          if (attempt >= 3) throw err;
          retries++;
          log(`  retrying a batch in 1 s: ${(err as Error).message.slice(0, 300)}`);
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
      done += size;
      if (done - reported >= n / 10) {
        reported = done;
        log(`  ${fmt(from + done)} events, ${fmt(Math.round(done / ((performance.now() - started) / 1000)))} events/s`);
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  return { ms: performance.now() - started, retries };
}
