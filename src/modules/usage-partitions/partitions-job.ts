import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { createIntervalJob } from '../../lib/interval-job';
import type { Metrics } from '../../metrics';
import type { AuditService } from '../audit/audit-service';
import { countDefault, maintainUsagePartitions } from './maintenance';
import { monthsAhead, readPartitions } from './partition-months';

/** Once an hour: a month's partition exists long before its first event (USAGE_PARTITIONS_AHEAD months ahead). */
export const PARTITION_MAINTENANCE_INTERVAL_MS = 3_600_000;

/**
 * Usage partition maintenance (maintenance.ts) at start and every hour in every instance: the
 * advisory lock lets one work, the others return at once. Created partitions are logged at info,
 * strays moved out of the default partition at warn (they mean a month had no partition: see
 * docs/RUNBOOK.md), a failure at error (the next round tries again; the service goes on).
 */
export function createUsagePartitionsJob({
  db,
  logger,
  metrics,
  audit,
  ahead,
  pack = false,
  now = Date.now,
  intervalMs = PARTITION_MAINTENANCE_INTERVAL_MS,
}: {
  db: Knex;
  logger: Logger;
  metrics: Metrics;
  audit: Pick<AuditService, 'record'>;
  ahead: number;
  /** USAGE_PACK_SETTLED. */
  pack?: boolean;
  now?: () => number;
  intervalMs?: number;
}) {
  metrics.usagePartitionGauges.watch(async () => {
    const [state, defaultRows] = await Promise.all([readPartitions(db), countDefault(db)]);
    return { defaultRows, monthsAhead: monthsAhead(state.months, new Date(now())) };
  });
  const job = createIntervalJob({
    task: async () => {
      const result = await maintainUsagePartitions(db, {
        now: new Date(now()),
        ahead,
        pack,
        audit,
        logger,
        metrics: { runs: metrics.usagePartitionRuns, duration: metrics.usagePartitionDuration, created: metrics.usagePartitionsCreated },
      });
      if (pack && !result.skipped) {
        metrics.usageMonthsPacked.inc(result.packed.length);
        metrics.usageMonthsPackWaiting.set(result.packWaiting.length);
      }
      if (result.movedFromDefault > 0) {
        logger.warn(
          { created: result.created, moved: result.movedFromDefault },
          'usage events had landed in the default partition (their month had no partition): moved into new partitions',
        );
      }
      return result;
    },
    report: (r) =>
      r.created.length && !r.movedFromDefault
        ? { done: 'usage partitions created', fields: { created: r.created, partitions: r.partitions, ms: Math.round(r.ms) } }
        : null,
    failed: 'usage partition maintenance failed',
    logger,
    intervalMs,
  });
  return {
    run: () => job.run(),
    /** The first round now, then every interval. */
    start(): void {
      job.start();
      void job.run();
    },
    stop: () => job.stop(),
  };
}
