import type { Knex } from 'knex';

/**
 * The months of usage_events whose partition's indexes were rebuilt once the month had settled (no
 * event can arrive online any more: 35 days after its end). A month is compacted once; the row says
 * when. Not per customer: one row per month (docs/SCALING.md).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`create table usage_partition_compactions (
    month date primary key,
    partition text not null,
    bytes_before bigint not null,
    bytes_after bigint not null,
    compacted_at timestamptz not null default now()
  )`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop table usage_partition_compactions');
}
