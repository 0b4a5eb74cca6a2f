import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('usage_events', (t) => {
    t.uuid('id').primary();
    t.uuid('customer_id').notNullable().references('id').inTable('customers').onDelete('RESTRICT');
    t.text('metric').notNullable();
    // Exact decimals: never a float.
    t.decimal('quantity', 20, 6).notNullable();
    t.timestamp('occurred_at', { useTz: true }).notNullable();
    t.text('idempotency_key').notNullable();
    // SHA-256 of the request as given, to tell a replay from a reused key with another body.
    t.text('request_hash').notNullable();
    t.timestamp('received_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    // The outbox towards Stripe: pending -> sent | failed; local when Stripe is off or the customer has no Stripe customer.
    t.text('state').notNullable();
    t.integer('attempts').notNullable().defaultTo(0);
    t.timestamp('next_attempt_at', { useTz: true }).nullable();
    t.text('last_error').nullable();
    t.timestamp('sent_at', { useTz: true }).nullable();
    t.unique(['customer_id', 'idempotency_key'], { indexName: 'usage_events_customer_idempotency_unique' });
    t.check("state in ('pending', 'sent', 'failed', 'local')", [], 'usage_events_state_check');
    t.check('quantity >= 0', [], 'usage_events_quantity_check');
    t.index(['customer_id', 'occurred_at'], 'usage_events_customer_occurred_idx');
    t.index(['occurred_at'], 'usage_events_occurred_idx');
  });
  // The forwarder's queue: only pending rows, ordered by when they are due.
  await knex.raw("create index usage_events_due_idx on usage_events (next_attempt_at) where state = 'pending'");
  await knex.raw("create index usage_events_failed_idx on usage_events (id) where state = 'failed'");

  // Daily totals kept in the same statement as each insert, so reads sum days, not events.
  // Striped: each statement adds to one of several shard rows, so concurrent writers for one
  // customer do not queue on a single row lock; reads sum the shards.
  await knex.schema.createTable('usage_daily', (t) => {
    t.uuid('customer_id').notNullable().references('id').inTable('customers').onDelete('RESTRICT');
    t.text('metric').notNullable();
    t.date('day').notNullable();
    t.smallint('shard').notNullable();
    t.decimal('quantity', 26, 6).notNullable();
    t.bigInteger('events').notNullable();
    t.primary(['customer_id', 'metric', 'day', 'shard']);
    t.index(['day'], 'usage_daily_day_idx');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('usage_daily');
  await knex.schema.dropTable('usage_events');
}
