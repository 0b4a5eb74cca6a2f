import type { Knex } from 'knex';
import { pendingMigrations } from '../../db/migration-source';
import { AppError } from '../../errors/app-error';

export type Readiness = { ready: true } | { ready: false; message: string; details: Record<string, unknown> };

/** How old an answer /ready may give: probes come every few seconds, floods must not reach the database. */
export const READINESS_MAX_AGE_MS = 1000;

/**
 * /ready needs no credentials, so anyone can call it as often as they like: a flood of checks once
 * slowed every other request tenfold. Each answer comes from a check started at most
 * READINESS_MAX_AGE_MS ago; calls arriving while a check runs share it, and a failure is reused
 * for the same second as a success (a database in trouble is not asked more often).
 */
export function createReadinessCheck({ db, now = Date.now, maxAgeMs = READINESS_MAX_AGE_MS }: { db: Knex; now?: () => number; maxAgeMs?: number }) {
  let last: { startedAt: number; result: Readiness } | null = null;
  let inFlight: Promise<Readiness> | null = null;

  async function run(): Promise<Readiness> {
    let pending: string[];
    try {
      await db.raw('select 1');
      pending = await pendingMigrations(db);
    } catch {
      return { ready: false, message: 'Not ready: the database is unreachable', details: { database: 'unreachable' } };
    }
    if (pending.length > 0) return { ready: false, message: 'Not ready: migrations are pending', details: { database: 'ok', pending_migrations: pending } };
    return { ready: true };
  }

  async function check(): Promise<Readiness> {
    if (last && now() - last.startedAt < maxAgeMs) return last.result;
    if (!inFlight) {
      const startedAt = now();
      inFlight = run()
        .then((result) => {
          last = { startedAt, result };
          return result;
        })
        .finally(() => {
          inFlight = null;
        });
    }
    return inFlight;
  }

  return {
    check,
    /** The 503 a caller gets when not ready (a fresh error each time: the result is shared, errors are not). */
    async assertReady(): Promise<void> {
      const r = await check();
      if (!r.ready) throw new AppError('SERVICE_UNAVAILABLE', r.message, r.details);
    },
  };
}

export type ReadinessCheck = ReturnType<typeof createReadinessCheck>;
