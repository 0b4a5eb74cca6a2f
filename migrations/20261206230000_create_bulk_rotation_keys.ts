import type { Knex } from 'knex';

/**
 * Which key a bulk rotation run (its Idempotency-Key) made for each customer, so a run whose answer
 * was lost after its commit can be sent again and replace those keys instead of leaving them live
 * with nobody holding them. Never a secret: key ids only.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('bulk_rotation_keys', (t) => {
    t.text('idempotency_key').notNullable();
    t.uuid('customer_id').notNullable().references('id').inTable('customers').onDelete('CASCADE');
    t.uuid('key_id').notNullable().references('id').inTable('api_keys').onDelete('CASCADE');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['idempotency_key', 'customer_id']);
  });
  await knex.raw('create index bulk_rotation_keys_created_idx on bulk_rotation_keys (created_at)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('bulk_rotation_keys');
}
