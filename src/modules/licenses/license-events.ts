import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { AppError } from '../../errors/app-error';
import type { EventEmitter, EventInput } from '../events/events-service';
import type { Activation } from './activations-repository';
import type { LicenseNoticesRepository } from './license-notices-repository';
import { activationJson } from './licenses-schemas';

/** An instance event: the activation as the API shows it after the change. */
export const activationEvent = (type: 'instance.activated' | 'instance.deactivated' | 'instance.released', a: Activation): EventInput => ({
  type,
  customerId: a.customerId,
  data: activationJson(a),
});

/** At most one instance.limit_reached per customer in this window, however often its instances retry. */
export const LIMIT_REACHED_WINDOW_MS = 3_600_000;

export interface LimitReachedDeps {
  db: Knex;
  repo: Pick<LicenseNoticesRepository, 'lockLimitNotices' | 'eventSince'>;
  events: EventEmitter;
  logger: Logger;
  now: () => number;
  /** Seats held now (the count the limit is checked against). */
  seatsHeld: (trx: Knex, customerId: string) => Promise<number>;
}

/**
 * instance.limit_reached: an activation refused because every seat is held. The refusing
 * transaction rolls back, so the event is written after it, in a short transaction of its own;
 * the customer's notices are serialised by a lock there and a recent one (LIMIT_REACHED_WINDOW_MS,
 * by the service clock) suppresses another, so an instance retrying in a loop, or twenty refused at
 * once, give one event. The activation that takes the last free seat is a success
 * (instance.activated) and writes no limit_reached: the event means an instance was turned away.
 */
export function createLimitReachedEvents({ db, repo, events, logger, now, seatsHeld }: LimitReachedDeps) {
  async function record(customerId: string, fingerprint: string, details: { limit: number; seat_frees_at: string }): Promise<void> {
    await db.transaction(async (trx) => {
      await repo.lockLimitNotices(trx, customerId);
      if (await repo.eventSince(trx, customerId, 'instance.limit_reached', now() - LIMIT_REACHED_WINDOW_MS)) return;
      await events.emit(trx, {
        type: 'instance.limit_reached',
        customerId,
        data: { customer_id: customerId, fingerprint, limit: details.limit, active: await seatsHeld(trx, customerId), seat_frees_at: details.seat_frees_at },
      });
    });
  }

  return {
    /** Runs an activation; when it is refused for the instance limit, records that (throttled), then rethrows the refusal. */
    async watch<T>(customerId: string, fingerprint: string, activation: () => Promise<T>): Promise<T> {
      try {
        return await activation();
      } catch (err) {
        if (err instanceof AppError && err.code === 'INSTANCE_LIMIT_REACHED') {
          // The refusal is the answer: a notice that cannot be written is logged, never turned into a 500.
          await record(customerId, fingerprint, err.details as { limit: number; seat_frees_at: string }).catch((e: unknown) =>
            logger.error({ err: e, customer_id: customerId }, 'instance.limit_reached could not be recorded'),
          );
        }
        throw err;
      }
    },
  };
}

export type LimitReachedEvents = ReturnType<typeof createLimitReachedEvents>;
