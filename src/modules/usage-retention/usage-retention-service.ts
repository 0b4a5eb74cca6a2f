import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { AppError, NotFoundError, ValidationError } from '../../errors/app-error';
import { createIntervalJob } from '../../lib/interval-job';
import { systemContext, type ActorContext } from '../../lib/request-context';
import type { AuditService } from '../audit/audit-service';
import { archivedMonths, dataFileOf, partitionOf, readEvents, readManifest, writeArchive, type ArchivedEvent, type Manifest } from './archive-files';
import { archiveProblems, tableProblems } from './archive-check';
import { DROPPED_MONTHS_TTL_MS, forgetDroppedMonths } from './dropped-months';
import { monthOfPartition, type RetainReason, type UsageArchive, type UsageRetentionRepository } from './usage-retention-repository';

/*
 * Retention of raw usage events (docs/USAGE.md, Retention and archives). A month older than
 * USAGE_RETENTION_MONTHS goes only when eligible (the repository's `eligibility`), in steps that can
 * each be interrupted and run again: archive (data file, then manifest) -> verify -> record
 * (dropping_at) -> wait out the other instances' memory of which months are gone -> detach -> verify
 * again against the detached table (frozen now: nothing more can reach it) -> drop, record and audit
 * in one transaction. A run finds what an interrupted one left (a detach left pending, a table
 * detached but not dropped, an archive without manifest) and finishes it. One instance at a time
 * (an advisory lock).
 */

export const RETAIN_REASONS: readonly RetainReason[] = ['unforwarded', 'open_period', 'no_archive_dir', 'archive_failed', 'restored'];

export interface UsageRetentionDeps {
  db: Knex;
  repo: UsageRetentionRepository;
  audit: AuditService;
  logger: Logger;
  settings: { retentionMonths: number; archiveDir?: string; withoutArchive: boolean; stripeEnabled: boolean };
  now?: () => number;
  /** Kept months by reason after each run (the usage_partitions_retained gauge). */
  onRetained?: (counts: Record<RetainReason, number>) => void;
  /** Tests: called after each step ('archived', 'detached', 'dropped'); a throw or a kill there stops the run. */
  faults?: { after?: (step: string) => void | Promise<void> };
  /** How long to wait between recording a month as going and detaching it (default: longer than DROPPED_MONTHS_TTL_MS). */
  settleMs?: number;
  /** The longest wait for the lock a plain DETACH needs on usage_events (then tried again). */
  lockTimeoutMs?: number;
}

export interface RetentionRun {
  dropped: string[];
  kept: { month: string; reason: RetainReason }[];
  /** Months an interrupted run had detached, dropped by this one. */
  finished: string[];
}

export interface VerifiedArchive {
  month: string;
  manifest: Manifest;
  partitionChecked: boolean;
}

const MONTH_RE = /^(\d{4})-(0[1-9]|1[0-2])$/;

/** A month as the routes take it (YYYY-MM); 422 otherwise. */
export function parseMonth(month: string): string {
  if (!MONTH_RE.test(month)) throw new ValidationError('month must be YYYY-MM', [{ path: 'month', message: 'must be a month as YYYY-MM, e.g. 2024-01' }]);
  return month;
}

/** The first month kept: the start of the current UTC month, `months` months back ('YYYY-MM'). */
export function firstMonthKept(nowMs: number, months: number): string {
  const d = new Date(nowMs);
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - months, 1)).toISOString().slice(0, 7);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function createUsageRetentionService(deps: UsageRetentionDeps) {
  const { db, repo, audit, logger, settings } = deps;
  const clock = deps.now ?? Date.now;
  const dir = settings.archiveDir;
  const after = async (step: string) => deps.faults?.after?.(step);

  /** Problems of the month's archive, from its files and (when `table` exists) against its rows. */
  async function problemsOf(month: string, manifest: Manifest, table: string | null): Promise<string[]> {
    const problems = await archiveProblems(dir!, month, manifest);
    if (table && problems.length === 0) problems.push(...tableProblems(manifest, await repo.tableTotals(db, table)));
    return problems;
  }

  /** An archive of the table that verifies against it: the one there if it does, else written again. */
  async function archiveOf(month: string, table: string): Promise<Manifest> {
    const existing = await readManifest(dir!, month).catch(() => null);
    if (existing && (await problemsOf(month, existing, table)).length === 0) return existing;
    const manifest = await writeArchive(dir!, month, repo.events(db, table), new Date(clock()));
    const problems = await problemsOf(month, manifest, table);
    if (problems.length) throw new Error(`the archive of ${month} does not verify: ${problems.join('; ')}`);
    return manifest;
  }

  /**
   * The table is detached: nothing can reach it any more. Its archive is checked once more against it
   * (rewritten if rows came in since it was made); if the month stopped being eligible meanwhile, the
   * table goes back. Then it is dropped, recorded and audited in one transaction.
   */
  async function finishDrop(month: string, table: string): Promise<RetainReason | null> {
    const reason = (await repo.eligibility(db, table, month, settings.stripeEnabled)) ?? (!dir && !settings.withoutArchive ? 'no_archive_dir' : null);
    if (reason) {
      await repo.attach(db, table, month);
      await repo.save(db, month, table, { dropping_at: null });
      forgetDroppedMonths(db);
      return reason;
    }
    const manifest = dir ? await archiveOf(month, table) : null;
    await db.transaction(async (trx) => {
      await repo.dropTable(trx, table);
      await repo.save(trx, month, table, {
        dropped_at: new Date(clock()),
        ...(manifest ? { rows: manifest.rows, bytes: manifest.bytes, sha256: manifest.sha256, file: dataFileOf(month) } : {}),
      });
      await audit.record(trx, systemContext(), {
        action: 'usage.partition_drop',
        outcome: 'success',
        targetType: 'usage_month',
        targetId: month,
        details: { partition: table, archived: manifest !== null, rows: manifest?.rows ?? null, sha256: manifest?.sha256 ?? null },
      });
    });
    await after('dropped');
    return null;
  }

  /** One old month: kept (the reason) or archived and dropped (null). */
  async function retire(month: string, table: string): Promise<RetainReason | null> {
    const record = await repo.get(db, month);
    if (record?.keepUntil && record.keepUntil.getTime() > clock()) return 'restored';
    const reason = await repo.eligibility(db, table, month, settings.stripeEnabled);
    if (reason) return reason;
    if (!dir && !settings.withoutArchive) return 'no_archive_dir';
    let manifest: Manifest | null = null;
    if (dir) {
      try {
        manifest = await archiveOf(month, table);
      } catch (err) {
        logger.error({ err, month }, 'usage retention: archiving a month failed; it is kept');
        return 'archive_failed';
      }
    }
    const at = new Date(clock());
    await db.transaction(async (trx) => {
      await repo.save(trx, month, table, {
        rows: manifest?.rows ?? null,
        bytes: manifest?.bytes ?? null,
        sha256: manifest?.sha256 ?? null,
        file: manifest ? dataFileOf(month) : null,
        archived_at: manifest ? at : null,
        verified_at: manifest ? at : null,
        dropping_at: at,
        dropped_at: null,
        restored_at: null,
        keep_until: null,
      });
      await audit.record(trx, systemContext(), {
        action: 'usage.archive',
        outcome: 'success',
        targetType: 'usage_month',
        targetId: month,
        details: manifest
          ? { partition: table, file: dataFileOf(month), rows: manifest.rows, bytes: manifest.bytes, sha256: manifest.sha256 }
          : { partition: table, file: null },
      });
    });
    forgetDroppedMonths(db);
    await after('archived');
    // Every instance's memory of the months gone (DROPPED_MONTHS_TTL_MS) now holds this one before its rows leave.
    await sleep(deps.settleMs ?? DROPPED_MONTHS_TTL_MS + 1_000);
    await repo.detach(db, table, deps.lockTimeoutMs ?? 200);
    await after('detached');
    return finishDrop(month, table);
  }

  async function run(nowMs: number): Promise<RetentionRun> {
    const result: RetentionRun = { dropped: [], kept: [], finished: [] };
    // A DETACH ... CONCURRENTLY interrupted half way.
    for (const p of await repo.partitions(db)) if (p.detachPending && monthOfPartition(p.name)) await repo.finalizeDetach(db, p.name);
    // Tables a run detached and did not drop.
    for (const table of await repo.detachedTables(db)) {
      const month = monthOfPartition(table)!;
      const record = await repo.get(db, month);
      if (!record?.droppingAt || record.restoredAt) {
        logger.warn({ table }, 'usage retention: a month table outside usage_events that retention did not detach; left alone');
        continue;
      }
      const reason = await finishDrop(month, table);
      if (reason) result.kept.push({ month, reason });
      else result.finished.push(month);
    }
    const cutoff = firstMonthKept(nowMs, settings.retentionMonths);
    for (const p of await repo.partitions(db)) {
      const month = monthOfPartition(p.name);
      if (!month || month >= cutoff) continue;
      const reason = await retire(month, p.name);
      if (reason) result.kept.push({ month, reason });
      else result.dropped.push(month);
    }
    const counts = Object.fromEntries(RETAIN_REASONS.map((r) => [r, 0])) as Record<RetainReason, number>;
    for (const k of result.kept) counts[k.reason]++;
    deps.onRetained?.(counts);
    for (const k of result.kept) logger.info({ month: k.month, reason: k.reason }, 'usage retention: an old month is kept');
    return result;
  }

  /** The month's manifest, or the right refusal: 404 for a month with no archive at all. */
  async function manifestOf(month: string): Promise<Manifest> {
    if (!dir) throw new AppError('CONFLICT', 'USAGE_ARCHIVE_DIR is not set: this instance reads no archives');
    let manifest: Manifest | null;
    try {
      manifest = await readManifest(dir, month);
    } catch (err) {
      throw new AppError('CONFLICT', `the archive of ${month} does not verify: its manifest cannot be read (${(err as Error).message})`);
    }
    if (manifest) return manifest;
    const files = await archivedMonths(dir);
    if (files.some((f) => f.month === month))
      throw new AppError('CONFLICT', `the archive of ${month} is unfinished (no manifest): the next retention run writes it again`);
    throw new NotFoundError('Usage archive');
  }

  /** Verified from its files, and against the month's table when it exists and `againstTable`. */
  async function verifyMonth(month: string, againstTable: boolean): Promise<VerifiedArchive> {
    const manifest = await manifestOf(month);
    const t = againstTable ? await repo.tableExists(db, partitionOf(month)) : { exists: false };
    const problems = await problemsOf(month, manifest, t.exists ? partitionOf(month) : null);
    if (problems.length) throw new AppError('CONFLICT', `the archive of ${month} does not verify: ${problems.join('; ')}`, { problems });
    return { month, manifest, partitionChecked: t.exists };
  }

  return {
    archiveDirSet: dir !== undefined,

    /** One retention pass, if no other instance is running one (null then). */
    runOnce(opts: { now?: number } = {}): Promise<RetentionRun | null> {
      return repo.withLock(db, () => run(opts.now ?? clock()));
    },

    /** The archives in USAGE_ARCHIVE_DIR and the months recorded, by month. */
    async list(): Promise<{ archive: UsageArchive | null; month: string; complete: boolean | null }[]> {
      const records = new Map((await repo.list(db)).map((r) => [r.month, r]));
      const files = dir ? new Map((await archivedMonths(dir)).map((f) => [f.month, f.complete])) : new Map<string, boolean>();
      const months = [...new Set([...records.keys(), ...files.keys()])].sort();
      return months.map((month) => ({ month, archive: records.get(month) ?? null, complete: dir ? (files.get(month) ?? false) : null }));
    },

    /** 409 with the problems when the archive does not verify; the time of the check is recorded. */
    async verify(month: string): Promise<VerifiedArchive> {
      const v = await verifyMonth(month, true);
      if (await repo.get(db, month)) await repo.save(db, month, partitionOf(month), { verified_at: new Date(clock()) });
      return v;
    },

    /**
     * The month's events back in usage_events from its archive (verified first), with their ids, times
     * and states; a key already there is left alone, so a second restore adds nothing. usage_daily is
     * not touched: it never lost them. Without keepDays the month goes again at the next run.
     */
    async restore(ctx: ActorContext, month: string, keepDays?: number): Promise<{ month: string; rows: number; inserted: number; keepUntil: Date | null }> {
      const { manifest } = await verifyMonth(month, false);
      const table = partitionOf(month);
      const done = await repo.withLock(
        db,
        async () => {
          const t = await repo.tableExists(db, table);
          try {
            if (t.exists && !t.attached) await repo.attach(db, table, month);
            else if (!t.exists) await repo.ensureMonthPartition(db, month);
          } catch (err) {
            // Events of the month written after it was dropped sit in the default partition: they must move first.
            if ((err as { code?: string }).code !== '23514') throw err;
            throw new AppError(
              'CONFLICT',
              `events of ${month} came in after it was dropped (in usage_events_default): its partition cannot be made again until they are moved`,
            );
          }
          let inserted = 0;
          let batch: ArchivedEvent[] = [];
          const flush = async () => {
            const events = batch;
            batch = [];
            if (events.length) inserted += await db.transaction((trx) => repo.insertEvents(trx, events));
          };
          for await (const e of readEvents(dir!, month)) {
            batch.push(e);
            if (batch.length >= 1000) await flush();
          }
          await flush();
          const at = new Date(clock());
          const keepUntil = keepDays ? new Date(at.getTime() + keepDays * 86_400_000) : null;
          await db.transaction(async (trx) => {
            await repo.save(trx, month, table, {
              rows: manifest.rows,
              bytes: manifest.bytes,
              sha256: manifest.sha256,
              file: dataFileOf(month),
              restored_at: at,
              keep_until: keepUntil,
            });
            await audit.record(trx, ctx, {
              action: 'usage.archive_restore',
              outcome: 'success',
              targetType: 'usage_month',
              targetId: month,
              details: { partition: table, rows: manifest.rows, inserted, keep_until: keepUntil?.toISOString() ?? null },
            });
          });
          forgetDroppedMonths(db);
          return { month, rows: manifest.rows, inserted, keepUntil };
        },
        30_000,
      );
      if (!done) throw new AppError('CONFLICT', 'usage retention has been running for more than 30 seconds: try the restore again later');
      return done;
    },
  };
}

export type UsageRetentionService = ReturnType<typeof createUsageRetentionService>;

/** One pass of retention (tests and the job): see createUsageRetentionService. */
export function runUsageRetention(deps: UsageRetentionDeps, opts: { now?: number } = {}): Promise<RetentionRun | null> {
  return createUsageRetentionService(deps).runOnce(opts);
}

/** Every hour in every instance; the advisory lock lets one work at a time. */
export function createUsageRetentionJob({
  retention,
  logger,
  intervalMs,
}: {
  retention: Pick<UsageRetentionService, 'runOnce'>;
  logger: Logger;
  intervalMs: number;
}) {
  return createIntervalJob({
    task: () => retention.runOnce(),
    report: (r) =>
      r && (r.dropped.length || r.finished.length)
        ? { done: 'usage retention: old months archived and dropped', fields: { dropped: r.dropped, finished: r.finished } }
        : null,
    failed: 'usage retention failed',
    logger,
    intervalMs,
  });
}
