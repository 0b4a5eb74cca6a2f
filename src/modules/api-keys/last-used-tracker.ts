import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { ApiKeysRepository } from './api-keys-repository';

/**
 * Keeps last_used_at without a write per request: uses are stamped in memory and written
 * in one batched UPDATE every LAST_USED_FLUSH_SECONDS, and once more on shutdown.
 */
export function createLastUsedTracker(deps: { db: Knex; repo: ApiKeysRepository; logger: Logger; intervalMs: number }) {
  const { db, repo, logger, intervalMs } = deps;
  let pending = new Map<string, Date>();
  let timer: NodeJS.Timeout | null = null;

  async function flush(): Promise<void> {
    if (pending.size === 0) return;
    const batch = pending;
    pending = new Map();
    try {
      await repo.touchLastUsed(
        db,
        [...batch].map(([id, at]) => ({ id, at })),
      );
    } catch (err) {
      // Put the stamps back (newer ones win) so the next flush retries them.
      for (const [id, at] of batch) if (!pending.has(id)) pending.set(id, at);
      logger.warn({ err, keys: batch.size }, 'could not record api key last use; will retry');
    }
  }

  return {
    touch(keyId: string, at: Date): void {
      pending.set(keyId, at);
    },
    flush,
    start(): void {
      timer ??= setInterval(() => void flush(), intervalMs);
      timer.unref();
    },
    async stop(): Promise<void> {
      if (timer) clearInterval(timer);
      timer = null;
      await flush();
    },
  };
}

export type LastUsedTracker = ReturnType<typeof createLastUsedTracker>;
