/**
 * Remembers verdicts on presented keys (by SHA-256 of the key) so bcrypt runs once per key,
 * not once per request. Positive verdicts must be re-checked against the database (a cheap
 * primary-key lookup, never bcrypt: a key's hash never changes) once their TTL has passed, so
 * a revocation missed by an instance is honoured within API_KEY_CACHE_TTL_SECONDS. Negative
 * verdicts are final (a refused secret can never become valid: secrets are random and never
 * reused), so a retried revoked or wrong key costs nothing either.
 * Bounded in size; the oldest entries go first. Revocation evicts by key or customer at once.
 */
export interface CachedVerdict {
  ok: boolean;
  customerId: string;
  keyId: string | null;
  /** The key's own expiry, if any: a positive verdict never outlives it. */
  keyExpiresAt: number | null;
  /** Why a negative verdict failed, for the audit trail. */
  reason?: string;
  /** False when the key's customer id names no customer: no counter is kept for it. */
  customerExists?: boolean;
}

export interface CacheEntry extends CachedVerdict {
  /** After this, a positive verdict is re-checked against the database before use. */
  checkAfter: number;
}

export class VerificationCache {
  private readonly entries = new Map<string, CacheEntry>();
  /**
   * Bumped by every eviction. A verification that started before an eviction must not
   * cache its (possibly revoked) verdict: it passes the generation it saw to set().
   */
  private gen = 0;

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {}

  get(fingerprint: string): CacheEntry | undefined {
    return this.entries.get(fingerprint);
  }

  get generation(): number {
    return this.gen;
  }

  set(fingerprint: string, verdict: CachedVerdict, seenGeneration = this.gen): void {
    if (this.ttlMs <= 0 || this.maxEntries <= 0 || seenGeneration !== this.gen) return;
    this.entries.delete(fingerprint);
    while (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
    this.entries.set(fingerprint, { ...verdict, checkAfter: this.now() + this.ttlMs });
  }

  evictKeys(keyIds: readonly string[]): void {
    if (keyIds.length === 0) return;
    this.gen++;
    const ids = new Set(keyIds);
    for (const [fp, e] of this.entries) if (e.keyId && ids.has(e.keyId)) this.entries.delete(fp);
  }

  evictCustomer(customerId: string): void {
    this.gen++;
    for (const [fp, e] of this.entries) if (e.customerId === customerId) this.entries.delete(fp);
  }

  clear(): void {
    this.gen++;
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}
