import type { UsageEventBody, UsageReceipt } from './client-types';
import { backoffMs, sleep } from './http';
import type { UsagePacer } from './usage-pacer';
import type { UsageQueue } from './usage-queue';
import { deliver } from './usage-sender';
import { serial } from './serial';

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
  /** Fed by the answers of both send functions. */
  pacer: UsagePacer;
  backoffBaseMs: number;
  backoffMaxMs: number;
  onError?: (err: unknown) => void;
  /**
   * Told what the service acknowledged of a batch before it leaves the queue (the usage ledger writes
   * it); the step it returns runs as the batch leaves the queue.
   */
  acknowledged?: (events: UsageEventBody[], receipts: UsageReceipt[]) => Promise<() => void>;
}

const empty = (): FlushResult => ({ sent: 0, replayed: 0, deadLettered: 0, receipts: [] });

/**
 * Sends the queue in batches, oldest first, one batch at a time, and all of it on flush(). A batch is
 * acknowledged on disk only after the service confirmed it. In the background: every intervalMs, as
 * many full batches (maxBatch events) as the queue holds, then the rest, as the pacer allows (never
 * while a Retry-After or an exhausted limit holds; the rest only as often as the limit's requests
 * left allow); after a failure, backoff with jitter. A queue that reaches maxBatch is sent at once.
 */
export class UsageFlusher {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private running = false;
  private failures = 0;
  /** One batch at a time. */
  private readonly exclusive = serial();
  private readonly stopping = new AbortController();

  constructor(private readonly o: FlusherOptions) {}

  start(): void {
    this.schedule(0);
  }

  /** Sends everything queued; resolves when the service has it (rejects, keeping the queue, when it cannot). */
  async flush(): Promise<FlushResult> {
    const total = empty();
    while (this.o.queue.length > 0) {
      if (this.stopped) throw new Error('the client is closed');
      // What the service said about its limits holds for flush() too: waiting beats a refusal.
      const held = this.o.pacer.holdMs();
      if (held > 0) await sleep(held, this.stopping.signal);
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
    this.stopping.abort(new Error('the client is closed'));
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.exclusive(() => Promise.resolve());
  }

  /** The queue holds a full batch: a round now, unless one is under way or the service asked to wait. */
  nudge(): void {
    if (this.stopped || this.running || this.failures > 0 || this.o.queue.length < this.o.maxBatch) return;
    if (this.timer) clearTimeout(this.timer);
    this.schedule(this.o.pacer.holdMs());
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.round(), ms);
    this.timer.unref();
  }

  private async round(): Promise<void> {
    this.timer = null;
    this.running = true;
    let wait = this.o.intervalMs;
    const { queue, pacer, maxBatch } = this.o;
    try {
      while (!this.stopped && queue.length > 0) {
        const held = queue.length >= maxBatch ? pacer.holdMs() : pacer.partialMs();
        if (held > 0) {
          wait = held;
          break;
        }
        await this.oneBatch(this.o.sendOnce);
      }
      this.failures = 0;
    } catch (err) {
      this.failures += 1;
      const backoff = Math.max(this.o.backoffBaseMs, backoffMs(Math.min(this.failures, 20), this.o));
      wait = Math.max(pacer.holdMs(), Math.min(backoff, this.o.backoffMaxMs));
      this.o.onError?.(err);
    } finally {
      this.running = false;
    }
    this.schedule(wait);
  }

  /** One batch from the head of the queue, never two at once. */
  private oneBatch(send: FlusherOptions['send']): Promise<FlushResult> {
    return this.exclusive(async () => {
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
      // By position: a usage bundle's receipt imported meanwhile may have taken some of them already.
      const acknowledged = this.o.acknowledged;
      await q.acknowledgeThrough(
        entries[entries.length - 1]!,
        acknowledged
          ? (leaving) =>
              acknowledged(
                leaving.map((e) => e.event),
                receipts,
              )
          : undefined,
      );
      return { sent: receipts.length, replayed: receipts.filter((r) => r.replayed).length, deadLettered, receipts };
    });
  }
}
