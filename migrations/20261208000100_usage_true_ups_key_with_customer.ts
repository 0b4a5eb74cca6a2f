import type { Knex } from 'knex';

/**
 * Every unique constraint and foreign key on the usage tables holds customer_id, so the schema can be
 * distributed by customer (docs/SCALING.md). usage_true_ups was the one keyed by id alone: its primary
 * key becomes (customer_id, id), and a plain index on id keeps the true-up worker's lookups by id.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('alter table usage_true_ups drop constraint usage_true_ups_pkey');
  await knex.raw('alter table usage_true_ups add constraint usage_true_ups_pkey primary key (customer_id, id)');
  await knex.raw('create index usage_true_ups_id on usage_true_ups (id)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index usage_true_ups_id');
  await knex.raw('alter table usage_true_ups drop constraint usage_true_ups_pkey');
  await knex.raw('alter table usage_true_ups add constraint usage_true_ups_pkey primary key (id)');
}
