import type { ClientRateLimitInfo, IncrementResponse, Options, Store } from 'express-rate-limit';
import { MemoryCounter } from './rate-limiter';

/**
 * A rate-limit store that keeps counters in Redis (shared by every instance) and, while Redis is
 * unreachable or slow, in this instance's memory. Limits never switch off: they become per-instance
 * until Redis answers again. Its Redis calls go through the breaker (redis-breaker.ts), which bounds
 * each one, skips Redis while it keeps failing, and logs the outage once for every limiter.
 */
export class FallbackStore implements Store {
  private readonly local = new MemoryCounter();
  private options: Options | null = null;
  private initializing = false;
  prefix?: string;

  constructor(private readonly shared: Store) {
    this.prefix = shared.prefix;
  }

  init(options: Options): void {
    this.options = options;
    this.local.init(options);
    this.initShared();
  }

  /**
   * The Redis store loads its counting script when initialised; if Redis was away then (at
   * startup, or during an outage) it must be loaded again: after any failure, one load at a time
   * (while the breaker is open, a load is refused without reaching Redis).
   */
  private initShared(): void {
    if (!this.options || this.initializing) return;
    this.initializing = true;
    Promise.resolve(this.shared.init?.(this.options))
      .catch(() => undefined)
      .finally(() => (this.initializing = false));
  }

  private async attempt<T>(shared: () => Promise<T> | T, local: () => Promise<T> | T): Promise<T> {
    try {
      return await shared();
    } catch {
      this.initShared();
      return local();
    }
  }

  get(key: string): Promise<ClientRateLimitInfo | undefined> {
    return this.attempt(
      () => this.shared.get?.(key),
      () => this.local.get(key),
    );
  }

  increment(key: string): Promise<IncrementResponse> {
    return this.attempt(
      () => this.shared.increment(key),
      () => this.local.increment(key),
    );
  }

  async decrement(key: string): Promise<void> {
    await this.attempt(
      () => this.shared.decrement(key),
      () => this.local.decrement(key),
    );
  }

  async resetKey(key: string): Promise<void> {
    await this.attempt(
      () => this.shared.resetKey(key),
      () => this.local.resetKey(key),
    );
  }

  shutdown(): void {
    this.local.shutdown();
  }
}
