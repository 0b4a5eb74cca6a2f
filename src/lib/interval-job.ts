import type { Logger } from 'pino';

export interface IntervalJobOptions<T> {
  /** One pass of the work; it must be safe in every instance at once (SKIP LOCKED, unique keys). */
  task: () => Promise<T>;
  /** Says what a pass did, when there is something to say (`done` is logged at info, with `fields`). */
  report: (result: T) => { done: string; fields: Record<string, unknown> } | null;
  /** Logged (at error, with the error) when a pass fails: the next interval tries again. */
  failed: string;
  logger: Logger;
  intervalMs: number;
}

/**
 * Background work every interval in this instance: one pass at a time (a run asked for while one is
 * under way gets that one), a failure logged and never thrown, the timer not keeping the process alive,
 * and stop() waiting for the pass under way. `run()` is there for tests and for a first pass at start;
 * it resolves to the pass's result, or undefined when it failed.
 */
export function createIntervalJob<T>({ task, report, failed, logger, intervalMs }: IntervalJobOptions<T>) {
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<T | undefined> | null = null;

  const run = (): Promise<T | undefined> => {
    running ??= task()
      .then((result) => {
        const said = report(result);
        if (said) logger.info(said.fields, said.done);
        return result;
      })
      .catch((err: unknown) => {
        logger.error({ err }, failed);
        return undefined;
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

export type IntervalJob<T> = ReturnType<typeof createIntervalJob<T>>;
