import type { Logger } from 'pino';
import { createIntervalJob } from '../../lib/interval-job';
import type { LicensesService } from './licenses-service';

/**
 * Releases stale activations every interval, so a seat held by an instance that went away is freed
 * (and audited) even when its customer never activates again. Counting releases them lazily too; this
 * keeps the list, the gauge and the audit trail current. Every instance may run it: the release is
 * one UPDATE that only takes rows still unreleased.
 */
export function createActivationSweeper({ licenses, logger, intervalMs }: { licenses: LicensesService; logger: Logger; intervalMs: number }) {
  return createIntervalJob({
    task: () => licenses.sweep(),
    report: (n) => (n ? { done: 'stale license activations released', fields: { released: n } } : null),
    failed: 'license activation sweep failed',
    logger,
    intervalMs,
  });
}
