import { BillingApiError } from './api-error';
import type { UsageEventBody, UsageReceipt } from './client-types';
import { backoffMs } from './http';
import type { UsageQueue } from './usage-queue';
import { deliver } from './usage-sender';

export interface FlushResult {
  /** Events the service has now (new or replayed). */
  sent: number;
  /** Of those, the ones it had already: a resend after a crash or a lost answer, counted once. */
  replayed: number;
  /** Refused for good and moved to the dead-letter file. */
  deadLettered: number;
  receipts: UsageReceipt[];
}

export interface FlusherOptions {
  queue: UsageQueue;
  /** One batch, with the retries the caller wants. */
  send: (events: UsageEventBody[]) => Promise<UsageReceipt[]>;
  /** The background loop's sends: one attempt each; the loop waits between rounds. */
  sendOnce: (events: UsageEventBody[]) => Promise<UsageReceipt[]>;
  maxBatch: number;
  intervalMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  onError?: (err: unknown) => void;
}

const empty = (): FlushResult => ({ sent: 0, replayed: 0, deadLettered: 0, receipts: [] });

/**
 * Sends the queue in batches, oldest first, one batch at a time: in the background every
 * intervalMs (after a failure, with backoff and jitter, never sooner than a Retry-After), and all of
 * it on flush(). A batch is acknowledged on disk only after the service confirmed it.
 */
export class UsageFlusher {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private failures = 0;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: FlusherOptions) {}

  start(): void {
    this.schedule(0);
  }

  /** Sends everything queued; resolves when the service has it (rejects, keeping the queue, when it cannot). */
  async flush(): Promise<FlushResult> {
    const total = empty();
    while (this.o.queue.length > 0) {
      if (this.stopped) throw new Error('the client is closed');
      const r = await this.oneBatch(this.o.send);
      total.sent += r.sent;
      total.replayed += r.replayed;
      total.deadLettered += r.deadLettered;
      total.receipts.push(...r.receipts);
    }
    return total;
  }

  /** Stops the loop and waits for a batch under way. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.tail.catch(() => undefined);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.round(), ms);
    this.timer.unref();
  }

  private async round(): Promise<void> {
    let wait = this.o.intervalMs;
    try {
      while (!this.stopped && this.o.queue.length > 0) await this.oneBatch(this.o.sendOnce);
      this.failures = 0;
    } catch (err) {
      this.failures += 1;
      const after = err instanceof BillingApiError && err.retryAfter !== null ? err.retryAfter * 1000 : 0;
      const backoff = Math.max(this.o.backoffBaseMs, backoffMs(Math.min(this.failures, 20), this.o));
      wait = Math.max(after, Math.min(backoff, this.o.backoffMaxMs));
      this.o.onError?.(err);
    }
    this.schedule(wait);
  }

  /** One batch from the head of the queue, never two at once. */
  private oneBatch(send: FlusherOptions['send']): Promise<FlushResult> {
    const run = this.tail.then(async () => {
      const q = this.o.queue;
      const entries = q.peek(this.o.maxBatch);
      if (entries.length === 0) return empty();
      let deadLettered = 0;
      const receipts = await deliver(
        send,
        entries.map((e) => e.event),
        async (event, err) => {
          deadLettered += 1;
          await q.deadLetter({ event, status: err.status, code: err.code, message: err.message, requestId: err.requestId, details: err.details });
        },
      );
      await q.acknowledge(entries.length);
      return { sent: receipts.length, replayed: receipts.filter((r) => r.replayed).length, deadLettered, receipts };
    });
    this.tail = run.catch(() => undefined);
    return run;
  }
}
