import type { Logger } from 'pino';
import { createIntervalJob } from '../../lib/interval-job';
import type { EventsService } from './events-service';

/**
 * Deletes events past EVENT_RETENTION_DAYS every interval, in bounded batches (their deliveries and
 * attempts go with them). Every instance may run it: each batch takes only rows no one else holds
 * (SKIP LOCKED), and an event still owed a delivery is never deleted.
 */
export function createEventRetention({ events, logger, intervalMs }: { events: Pick<EventsService, 'purgeExpired'>; logger: Logger; intervalMs: number }) {
  return createIntervalJob({
    task: () => events.purgeExpired(),
    report: (n) => (n ? { done: 'expired events deleted', fields: { deleted: n } } : null),
    failed: 'event retention failed',
    logger,
    intervalMs,
  });
}
