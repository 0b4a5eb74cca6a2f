import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('stripe_events', (t) => {
    // Stripe's event id: a redelivered event finds its row and has no second effect.
    t.text('id').primary();
    t.text('type').notNullable();
    t.bigInteger('stripe_created').notNullable();
    t.text('object_id').nullable();
    t.timestamp('received_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    // Set in the same transaction as the event's effect.
    t.timestamp('processed_at', { useTz: true }).nullable();
    t.integer('attempts').notNullable().defaultTo(0);
    t.text('last_error').nullable();
  });
  await knex.raw('create index stripe_events_unprocessed_idx on stripe_events (received_at) where processed_at is null');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('stripe_events');
}
