import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { ForwardingRepository } from './forwarding-repository';

export interface LeaseKeeperDeps {
  db: Knex;
  /** Renews leases in one statement (the usage outbox's, or the webhook deliveries'). */
  repo: Pick<ForwardingRepository, 'extendLeases'>;
  logger: Logger;
  leaseSeconds: number;
  /** How soon an outcome PostgreSQL refused is written again. */
  retryMs?: number;
  /** What the logs call the things held ('usage'), and what happens when an outcome is given up. */
  what?: string;
  givenUp?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The events one instance holds: claimed and queued, in a Stripe call, or waiting for the call's
 * outcome to be written. A lease is short (FORWARDER_LEASE_SECONDS) and renewed every third of it
 * for everything held, in one statement, so it never ends under a call in flight on a healthy
 * instance, and ends soon after an instance that died. Each event's lease end is kept on our own
 * clock, read before the statement that set it, so we never count on more lease than PostgreSQL gave.
 *
 * An outcome (sent, retry later, failed, given back) ends the hold. It is written after any renewal
 * already under way has landed, so a renewal never overwrites it; while PostgreSQL is away it is
 * tried again until PostgreSQL answers or the lease would end. Past that point another instance may
 * have the events: they are sent again, and Stripe drops the repeat by identifier.
 */
export function createLeaseKeeper({
  db,
  repo,
  logger,
  leaseSeconds,
  retryMs = 250,
  what = 'usage',
  givenUp = 'the events will be sent again (Stripe drops a repeat)',
}: LeaseKeeperDeps) {
  const leaseMs = leaseSeconds * 1000;
  const held = new Map<string, number>();
  let timer: NodeJS.Timeout | null = null;
  let renewing: Promise<void> | null = null;
  let failing = false;

  function stopRenewing(): void {
    if (timer) clearInterval(timer);
    timer = null;
  }

  function renew(): Promise<void> {
    if (renewing) return renewing;
    const now = Date.now();
    // A lease that ended may be another instance's by now: it is not ours to renew.
    for (const [id, until] of held) if (until <= now) held.delete(id);
    if (held.size === 0) {
      stopRenewing();
      return Promise.resolve();
    }
    const ids = [...held.keys()];
    renewing = repo
      .extendLeases(db, ids, leaseSeconds)
      .then(
        () => {
          for (const id of ids) if (held.has(id)) held.set(id, now + leaseMs);
          if (failing) logger.info({ events: ids.length }, `${what} leases renewed again`);
          failing = false;
        },
        (err: unknown) => {
          if (!failing) logger.warn({ err, events: ids.length }, `${what} leases not renewed; retrying`);
          failing = true;
        },
      )
      .finally(() => {
        renewing = null;
      });
    return renewing;
  }

  return {
    leaseMs,
    /** Events just claimed, by a statement sent at `since` (our clock). */
    hold(ids: string[], since: number): void {
      for (const id of ids) held.set(id, since + leaseMs);
      if (!timer && held.size > 0) {
        timer = setInterval(() => void renew(), Math.max(1, Math.floor(leaseMs / 3)));
        timer.unref();
      }
    },

    /** Still ours to send; an event whose lease ended is let go (it is due again for anyone). */
    live(id: string): boolean {
      if ((held.get(id) ?? 0) > Date.now()) return true;
      held.delete(id);
      return false;
    },

    /**
     * Writes the outcome for events held, and lets them go. Resolves with what `write` returned, or
     * null when PostgreSQL did not answer before the lease would end (never rejects).
     */
    async settle<T>(ids: string[], write: () => Promise<T>): Promise<T | null> {
      if (ids.length === 0) return write().catch(() => null);
      let until = Infinity;
      for (const id of ids) {
        until = Math.min(until, held.get(id) ?? 0);
        held.delete(id);
      }
      // A renewal already sent may name these events: let it land first.
      await renewing;
      for (let tries = 1; ; tries++) {
        try {
          return await write();
        } catch (err) {
          if (Date.now() + retryMs >= until) {
            logger.error({ err, events: ids.length, tries }, `${what} outcome not recorded before the lease ended; ${givenUp}`);
            return null;
          }
          if (tries === 1) logger.warn({ err, events: ids.length }, `${what} outcome not recorded; retrying until PostgreSQL answers`);
          await sleep(retryMs);
        }
      }
    },

    /** How many events are held now. */
    size: () => held.size,

    close(): void {
      stopRenewing();
    },
  };
}

export type LeaseKeeper = ReturnType<typeof createLeaseKeeper>;
