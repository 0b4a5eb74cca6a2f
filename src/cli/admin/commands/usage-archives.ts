import type { Command } from '@commander-js/extra-typings';
import type { Answer } from '../admin-client';
import { action, int, type Deps } from '../context';
import { details, table } from '../io';

type Archive = Answer<'/api/usage/archives', 'get'>['data'][number];

const archivesTable = (rows: Archive[]) =>
  table(rows, [
    { header: 'month', value: (a) => a.month },
    { header: 'raw events', value: (a) => a.raw_events },
    { header: 'rows', value: (a) => a.rows ?? '', right: true },
    { header: 'bytes', value: (a) => a.bytes ?? '', right: true },
    {
      header: 'file',
      value: (a) => (a.file ? `${a.file}${a.file_complete === false ? ' (unfinished)' : ''}` : a.file_complete === false ? '(unfinished)' : ''),
    },
    { header: 'dropped', value: (a) => a.dropped_at ?? '' },
    { header: 'restored', value: (a) => a.restored_at ?? '' },
    { header: 'keep until', value: (a) => a.keep_until ?? '' },
  ]);

/** `usage archive list|verify|restore <month>`: the raw usage events retention archived (docs/USAGE.md, Retention and archives). */
export function usageArchiveCommands(usage: Command, deps: Deps): void {
  const archive = usage.command('archive').description('archives of months whose raw usage events retention dropped: list, verify, restore');

  archive
    .command('list')
    .description('every month with an archive file or a retention record, oldest first')
    .action(
      action(deps, async (ctx) => {
        const r = await ctx.client().usageArchives();
        ctx.print(r, () => {
          if (!r.archive_dir_set) ctx.say('USAGE_ARCHIVE_DIR is not set on the service: only its records are listed');
          if (r.data.length) ctx.out(archivesTable(r.data));
          else ctx.say('no archives');
        });
      }),
    );

  archive
    .command('verify <month>')
    .description('check a month’s archive (YYYY-MM): its SHA-256, rows and totals against its manifest, and against the month’s partition if it still exists')
    .action(
      action(deps, async (ctx, _o, [month]) => {
        const r = await ctx.client().verifyUsageArchive(month);
        ctx.print(r, () => {
          ctx.out(
            details([
              ['month', r.month],
              ['rows', r.rows],
              ['bytes', r.bytes],
              ['sha256', r.sha256],
              ['first occurred', r.first_occurred_at ?? '-'],
              ['last occurred', r.last_occurred_at ?? '-'],
              ['partition checked', r.partition_checked ? 'yes' : 'no (dropped)'],
            ]),
          );
          ctx.say(`The archive of ${r.month} verifies.`);
        });
      }),
    );

  archive
    .command('restore <month>')
    .description('put a month’s archived events back (verified first; a second restore adds nothing; the daily totals are not touched)')
    .option('--keep-days <n>', 'keep them this many days before retention drops the month again (default: dropped at its next run)', int(1, 3650))
    .action(
      action(deps, async (ctx, o, [month]) => {
        const r = await ctx.client().restoreUsageArchive(month, o.keepDays === undefined ? {} : { keep_days: o.keepDays });
        ctx.print(r, () =>
          ctx.say(
            `Restored ${r.inserted} of the ${r.rows} archived events of ${r.month} (the others were there already). ` +
              (r.keep_until ? `Kept until ${r.keep_until}.` : 'Retention drops the month again at its next run (use --keep-days to keep it).'),
          ),
        );
      }),
    );
}
