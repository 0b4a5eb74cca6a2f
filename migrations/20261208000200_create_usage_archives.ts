import type { Knex } from 'knex';

/**
 * usage_archives: one row per month whose raw usage events retention archived and dropped
 * (src/modules/usage-retention). It is the record of which months have no raw events any more:
 * dropping_at set and restored_at null (reports then read those months' edges from usage_daily).
 * `file` is the archive's name in USAGE_ARCHIVE_DIR, null when dropped without an archive.
 * `keep_until`: a restored month is not dropped again before this time.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    create table usage_archives (
      month date primary key,
      partition text not null,
      rows bigint,
      bytes bigint,
      sha256 text,
      file text,
      archived_at timestamptz,
      verified_at timestamptz,
      dropping_at timestamptz,
      dropped_at timestamptz,
      restored_at timestamptz,
      keep_until timestamptz,
      constraint usage_archives_month_first check (month = date_trunc('month', month)::date)
    )`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop table usage_archives');
}
