import type { Logger } from 'pino';
import type { LicensesService } from './licenses-service';

/**
 * Releases stale activations every interval, so a seat held by an instance that went away is freed
 * (and audited) even when its customer never activates again. Counting releases them lazily too; this
 * keeps the list, the gauge and the audit trail current. Every instance may run it: the release is
 * one UPDATE that only takes rows still unreleased.
 */
export function createActivationSweeper({ licenses, logger, intervalMs }: { licenses: LicensesService; logger: Logger; intervalMs: number }) {
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;

  const run = () => {
    running ??= licenses
      .sweep()
      .then((n) => void (n && logger.info({ released: n }, 'stale license activations released')))
      .catch((err: unknown) => logger.error({ err }, 'license activation sweep failed'))
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
