import type { Knex } from 'knex';

/**
 * Events out: the event log (one row per business change, written in the change's transaction),
 * the webhook endpoints with their encrypted signing secrets, one delivery per (endpoint, event)
 * (the outbox the delivery workers claim with leases, as the usage forwarder does), and every
 * attempt made. Deleting an event (retention) or an endpoint takes its deliveries and attempts along.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('events', (t) => {
    t.text('id').primary(); // evt_ + a UUIDv7 in hex: time-ordered, so newest first pages by id alone
    t.text('type').notNullable();
    t.uuid('customer_id').nullable().references('id').inTable('customers').onDelete('SET NULL');
    t.jsonb('data').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw(`alter table events add constraint events_id_format check (id ~ '^evt_[0-9a-f]{32}$')`);
  await knex.raw('create index events_created_at_idx on events (created_at)');
  await knex.raw('create index events_customer_idx on events (customer_id, id)');
  await knex.raw('create index events_type_idx on events (type, id)');

  await knex.schema.createTable('webhook_endpoints', (t) => {
    t.uuid('id').primary();
    t.text('url').notNullable();
    t.specificType('events', 'text[]').notNullable();
    t.text('description').nullable();
    t.boolean('disabled').notNullable().defaultTo(false);
    t.text('disabled_reason').nullable(); // 'admin' | 'failing'
    t.timestamp('disabled_at', { useTz: true }).nullable();
    /** When deliveries started failing without a success since: the endpoint is disabled WEBHOOK_DISABLE_AFTER later. */
    t.timestamp('failing_since', { useTz: true }).nullable();
    t.timestamp('last_success_at', { useTz: true }).nullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw(`alter table webhook_endpoints add constraint webhook_endpoints_disabled_reason check (disabled_reason in ('admin', 'failing'))`);

  await knex.schema.createTable('webhook_endpoint_secrets', (t) => {
    t.uuid('id').primary();
    t.uuid('endpoint_id').notNullable().references('id').inTable('webhook_endpoints').onDelete('CASCADE');
    /** AES-256-GCM under WEBHOOK_SECRETS_KEY (secret-box.ts): never the secret itself. */
    t.text('ciphertext').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    /** Null: the current secret. A rotated-out secret keeps signing, beside the new one, until then. */
    t.timestamp('expires_at', { useTz: true }).nullable();
  });
  await knex.raw('create index webhook_endpoint_secrets_endpoint_idx on webhook_endpoint_secrets (endpoint_id)');

  await knex.schema.createTable('webhook_deliveries', (t) => {
    t.bigIncrements('id').primary();
    t.text('event_id').notNullable().references('id').inTable('events').onDelete('CASCADE');
    t.uuid('endpoint_id').notNullable().references('id').inTable('webhook_endpoints').onDelete('CASCADE');
    t.text('state').notNullable().defaultTo('pending'); // pending | delivered | failed
    t.integer('attempts').notNullable().defaultTo(0);
    t.timestamp('next_attempt_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('leased_until', { useTz: true }).nullable();
    t.text('leased_by').nullable();
    t.timestamp('last_attempt_at', { useTz: true }).nullable();
    t.integer('last_status').nullable();
    t.text('last_error').nullable();
    t.timestamp('delivered_at', { useTz: true }).nullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['endpoint_id', 'event_id']);
  });
  await knex.raw(`alter table webhook_deliveries add constraint webhook_deliveries_state check (state in ('pending', 'delivered', 'failed'))`);
  await knex.raw(`create index webhook_deliveries_due_idx on webhook_deliveries (next_attempt_at) where state = 'pending'`);
  await knex.raw('create index webhook_deliveries_event_idx on webhook_deliveries (event_id)');

  await knex.schema.createTable('webhook_attempts', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('delivery_id').notNullable().references('id').inTable('webhook_deliveries').onDelete('CASCADE');
    t.uuid('endpoint_id').notNullable().references('id').inTable('webhook_endpoints').onDelete('CASCADE');
    t.text('event_id').notNullable();
    t.timestamp('attempted_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.text('outcome').notNullable(); // delivered | failed
    t.integer('status').nullable(); // the answer's HTTP status; null when none came
    t.integer('duration_ms').notNullable();
    t.text('response_body').nullable(); // the first 1 kB of the answer
    t.text('error').nullable();
  });
  await knex.raw(`alter table webhook_attempts add constraint webhook_attempts_outcome check (outcome in ('delivered', 'failed'))`);
  await knex.raw('create index webhook_attempts_endpoint_idx on webhook_attempts (endpoint_id, id)');
  await knex.raw('create index webhook_attempts_delivery_idx on webhook_attempts (delivery_id)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('webhook_attempts');
  await knex.schema.dropTable('webhook_deliveries');
  await knex.schema.dropTable('webhook_endpoint_secrets');
  await knex.schema.dropTable('webhook_endpoints');
  await knex.schema.dropTable('events');
}
