/**
 * Remembers verdicts on presented keys (by SHA-256 of the key) so bcrypt runs once per
 * key per TTL. Positive entries make the hot path free of bcrypt and of the database;
 * negative entries make a retried revoked or wrong key cost nothing either (a failed
 * secret can never become valid: secrets are random and never reused).
 * Bounded in size; oldest entries go first. Revocation evicts by key or customer at once.
 */
export interface CachedVerdict {
  ok: boolean;
  customerId: string;
  keyId: string | null;
  /** The key's own expiry, if any: a cached entry never outlives it. */
  keyExpiresAt: number | null;
  /** Why a negative verdict failed, for the audit trail. */
  reason?: string;
}

interface Entry extends CachedVerdict {
  cachedUntil: number;
}

export class VerificationCache {
  private readonly entries = new Map<string, Entry>();
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

  get(fingerprint: string): CachedVerdict | undefined {
    const e = this.entries.get(fingerprint);
    if (!e) return undefined;
    if (this.now() >= e.cachedUntil) {
      this.entries.delete(fingerprint);
      return undefined;
    }
    return e;
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
    this.entries.set(fingerprint, { ...verdict, cachedUntil: this.now() + this.ttlMs });
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
