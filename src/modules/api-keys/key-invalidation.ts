import type { Knex } from 'knex';
import { Client } from 'pg';
import type { Logger } from 'pino';
import type { VerificationCache } from './verification-cache';

export const CHANNEL = 'api_key_invalidated';

export interface Invalidation {
  customerId: string;
  /** null: every key of the customer (customer deleted). */
  keyIds: string[] | null;
}

function evict(cache: VerificationCache, inv: Invalidation): void {
  if (inv.keyIds === null) cache.evictCustomer(inv.customerId);
  else cache.evictKeys(inv.keyIds);
}

/**
 * Revocation must reach every instance's verification cache. The writer sends a NOTIFY
 * inside its transaction (Postgres delivers it only on commit), evicts its own cache
 * after commit, and every instance LISTENs and evicts on receipt. If the listening
 * connection is down, the cache TTL (API_KEY_CACHE_TTL_SECONDS) is the bound.
 */
export function createKeyInvalidation(deps: { cache: VerificationCache; logger: Logger }) {
  const { cache, logger } = deps;
  let client: Client | null = null;
  let stopped = false;
  let retryTimer: NodeJS.Timeout | null = null;

  async function connect(url: string, attempt: number): Promise<void> {
    if (stopped) return;
    const c = new Client({ connectionString: url, application_name: 'billing-service-listener' });
    const retry = (err: unknown) => {
      if (stopped || client !== c) return;
      client = null;
      // Anything cached while deaf could be stale for at most one TTL; drop it now instead.
      cache.clear();
      logger.warn({ err }, 'api key invalidation listener lost; reconnecting');
      c.end().catch(() => undefined);
      retryTimer = setTimeout(() => void connect(url, attempt + 1), Math.min(30_000, 500 * 2 ** attempt));
      retryTimer.unref();
    };
    client = c;
    c.on('error', retry);
    c.on('end', () => retry(new Error('listener connection ended')));
    c.on('notification', (msg) => {
      if (msg.channel !== CHANNEL || !msg.payload) return;
      try {
        evict(cache, JSON.parse(msg.payload) as Invalidation);
      } catch (err) {
        logger.error({ err }, 'bad api key invalidation payload; clearing the cache');
        cache.clear();
      }
    });
    try {
      await c.connect();
      await c.query(`listen ${CHANNEL}`);
      // Revocations may have happened while we were not listening.
      cache.clear();
      attempt = 0;
    } catch (err) {
      retry(err);
    }
  }

  return {
    /** Starts listening; resolves once the first attempt finished (it retries in the background). */
    listen(url: string): Promise<void> {
      stopped = false;
      return connect(url, 0);
    },

    /** Call inside the transaction that revokes or expires keys. */
    async publish(trx: Knex, inv: Invalidation): Promise<void> {
      await trx.raw('select pg_notify(?, ?)', [CHANNEL, JSON.stringify(inv)]);
    },

    /** Several notices in one round trip (a bulk rotation); each stays small, under NOTIFY's 8000-byte payload limit. */
    async publishMany(trx: Knex, invs: Invalidation[]): Promise<void> {
      if (invs.length === 0) return;
      await trx.raw('select pg_notify(?, p) from unnest(?::text[]) as p', [CHANNEL, invs.map((inv) => JSON.stringify(inv))]);
    },

    /** Call after that transaction committed. */
    evictLocal(inv: Invalidation): void {
      evict(cache, inv);
    },

    async stop(): Promise<void> {
      stopped = true;
      if (retryTimer) clearTimeout(retryTimer);
      const c = client;
      client = null;
      await c?.end().catch(() => undefined);
    },
  };
}

export type KeyInvalidation = ReturnType<typeof createKeyInvalidation>;
