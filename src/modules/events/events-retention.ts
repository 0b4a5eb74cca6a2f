import type { Logger } from 'pino';
import type { EventsService } from './events-service';

/**
 * Deletes events past EVENT_RETENTION_DAYS every interval, in bounded batches (their deliveries and
 * attempts go with them). Every instance may run it: each batch takes only rows no one else holds
 * (SKIP LOCKED), and an event still owed a delivery is never deleted.
 */
export function createEventRetention({ events, logger, intervalMs }: { events: Pick<EventsService, 'purgeExpired'>; logger: Logger; intervalMs: number }) {
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<number> | null = null;

  const run = (): Promise<number> => {
    running ??= events
      .purgeExpired()
      .then((n) => {
        if (n) logger.info({ deleted: n }, 'expired events deleted');
        return n;
      })
      .catch((err: unknown) => {
        logger.error({ err }, 'event retention failed');
        return 0;
      })
      .finally(() => (running = null));
    return running;
  };

  return {
    start(): void {
      if (timer) return;
      timer = setInterval(() => void run(), intervalMs);
      timer.unref();
    },
    async stop(): Promise<void> {
      if (timer) clearInterval(timer);
      timer = null;
      await running;
    },
    run,
  };
}
