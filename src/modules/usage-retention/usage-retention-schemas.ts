import { z } from 'zod';
import { iso } from '../../http/common-schemas';
import { json, nullableTimestamp, obj } from '../../http/response-schemas';
import { dataFileOf, type Manifest } from './archive-files';
import type { UsageArchive } from './usage-retention-repository';

/*
 * The admin answers about usage archives (docs/USAGE.md, Retention and archives): what the CLI's
 * `usage archive list|verify|restore` reads.
 */

/** The month is checked in the service (422 when it is not YYYY-MM), not here: a bad path parameter would be a 404. */
export const monthParams = z.object({ month: z.string().describe('The month, YYYY-MM') });

export const restoreBody = z.strictObject({
  keep_days: z
    .number()
    .int()
    .min(1)
    .max(3650)
    .optional()
    .describe('Keep the restored events this many days before retention drops the month again; none: dropped again at the next run'),
});

const archiveRow = obj({
  month: z.string().describe('YYYY-MM'),
  partition: z.string().nullable(),
  raw_events: z.enum(['present', 'going', 'dropped', 'restored']).describe('Whether the month’s raw events are in usage_events'),
  rows: z.number().int().nullable(),
  bytes: z.number().int().nullable(),
  sha256: z.string().nullable(),
  file: z.string().nullable().describe('The data file in USAGE_ARCHIVE_DIR; null when the month was dropped without an archive'),
  file_complete: z.boolean().nullable().describe('The data file and its manifest are both there; null when USAGE_ARCHIVE_DIR is not set'),
  archived_at: nullableTimestamp,
  verified_at: nullableTimestamp,
  dropped_at: nullableTimestamp,
  restored_at: nullableTimestamp,
  keep_until: nullableTimestamp,
});

export const archivesResponse = obj({ archive_dir_set: z.boolean(), data: z.array(archiveRow) });

const total = obj({ customer_id: z.string(), metric: z.string(), quantity: z.string(), events: z.number().int() });

export const verifiedResponse = obj({
  month: z.string(),
  verified: z.literal(true),
  partition_checked: z.boolean().describe('The month’s partition exists and its rows were compared too'),
  rows: z.number().int(),
  bytes: z.number().int(),
  sha256: z.string(),
  first_occurred_at: z.string().nullable(),
  last_occurred_at: z.string().nullable(),
  totals: z.array(total),
});

export const restoredResponse = obj({
  month: z.string(),
  rows: z.number().int().describe('Events in the archive'),
  inserted: z.number().int().describe('Events put back (those already there are left alone)'),
  keep_until: nullableTimestamp,
});

export const archivesJson = json(archivesResponse, 'Every month with an archive file or a retention record, oldest first');

function rawEvents(a: UsageArchive | null): 'present' | 'going' | 'dropped' | 'restored' {
  if (!a) return 'present';
  if (a.restoredAt) return 'restored';
  if (a.droppedAt) return 'dropped';
  return a.droppingAt ? 'going' : 'present';
}

export const archiveJson = (month: string, a: UsageArchive | null, complete: boolean | null) => ({
  month,
  partition: a?.partition ?? null,
  raw_events: rawEvents(a),
  rows: a?.rows ?? null,
  bytes: a?.bytes ?? null,
  sha256: a?.sha256 ?? null,
  file: a?.file ?? (complete ? dataFileOf(month) : null),
  file_complete: complete,
  archived_at: iso(a?.archivedAt ?? null),
  verified_at: iso(a?.verifiedAt ?? null),
  dropped_at: iso(a?.droppedAt ?? null),
  restored_at: iso(a?.restoredAt ?? null),
  keep_until: iso(a?.keepUntil ?? null),
});

export const verifiedJson = (m: Manifest, partitionChecked: boolean) => ({
  month: m.month,
  verified: true as const,
  partition_checked: partitionChecked,
  rows: m.rows,
  bytes: m.bytes,
  sha256: m.sha256,
  first_occurred_at: m.first_occurred_at,
  last_occurred_at: m.last_occurred_at,
  totals: m.totals,
});
