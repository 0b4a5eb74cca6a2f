import type { ClientRateLimitInfo, IncrementResponse, Options, Store } from 'express-rate-limit';
import type { Logger } from 'pino';
import { MemoryCounter } from './rate-limiter';

/**
 * A rate-limit store that keeps counters in Redis (shared by every instance) and, while Redis is
 * unreachable, in this instance's memory. Limits never switch off: they become per-instance until
 * Redis answers again. A warning is logged once per outage.
 */
export class FallbackStore implements Store {
  private readonly local = new MemoryCounter();
  private degraded = false;
  private options: Options | null = null;
  private lastInit = 0;
  prefix?: string;

  constructor(
    private readonly shared: Store,
    private readonly name: string,
    private readonly logger: Logger,
  ) {
    this.prefix = shared.prefix;
  }

  init(options: Options): void {
    this.options = options;
    this.local.init(options);
    this.initShared();
  }

  /**
   * The Redis store loads its counting script when initialised; if Redis was away then (at
   * startup, or during an outage) it must be loaded again, at most once a second.
   */
  private initShared(): void {
    if (!this.options || Date.now() - this.lastInit < 1000) return;
    this.lastInit = Date.now();
    Promise.resolve(this.shared.init?.(this.options)).catch(() => undefined);
  }

  private async attempt<T>(shared: () => Promise<T> | T, local: () => Promise<T> | T): Promise<T> {
    try {
      const result = await shared();
      if (this.degraded) {
        this.degraded = false;
        this.logger.info({ limiter: this.name }, 'rate limits shared through Redis again');
      }
      return result;
    } catch (err) {
      this.initShared();
      if (!this.degraded) {
        this.degraded = true;
        this.logger.warn({ err, limiter: this.name }, 'Redis unreachable: rate limits counted per instance until it returns');
      }
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
