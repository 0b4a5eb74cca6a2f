/**
 * Answers kept per customer for a while, so an instance polling its upcoming invoice makes at most
 * one Stripe call per window (UPCOMING_INVOICE_CACHE). One entry per customer, keyed by what the
 * answer depends on here (its subscription, when that row last changed, its plan and when the plan
 * last changed): a new plan or a renewed period is a new key, never served the old answer.
 *
 * Single flight: callers asking while a call is under way share it. A failure is not kept: the
 * next caller tries again. At most `maxEntries` customers are held; past that the entry touched
 * least recently goes (a Map keeps insertion order, and a hit re-inserts).
 */
export class UpcomingCache<T> {
  private readonly entries = new Map<string, { key: string; value: Promise<T>; expiresAt: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries: number,
    private readonly now: () => number,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get(customerId: string, key: string, load: () => Promise<T>): Promise<T> {
    const hit = this.entries.get(customerId);
    if (hit && hit.key === key && hit.expiresAt > this.now()) {
      this.entries.delete(customerId);
      this.entries.set(customerId, hit);
      return hit.value;
    }
    // Until it settles the entry never expires: every caller meanwhile joins this call.
    const entry = { key, value: load(), expiresAt: Number.POSITIVE_INFINITY };
    this.entries.delete(customerId);
    this.entries.set(customerId, entry);
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    entry.value.then(
      () => {
        entry.expiresAt = this.now() + this.ttlMs;
      },
      () => {
        if (this.entries.get(customerId) === entry) this.entries.delete(customerId);
      },
    );
    return entry.value;
  }

  /** Forgets a customer's answer (its subscription or plan changed on this instance). */
  forget(customerId: string): void {
    this.entries.delete(customerId);
  }
}
