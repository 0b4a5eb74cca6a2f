import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('license_activations', (t) => {
    t.uuid('id').primary();
    t.uuid('customer_id').notNullable().references('id').inTable('customers').onDelete('RESTRICT');
    // The instance's own id: 8-128 characters of [A-Za-z0-9._:-], checked before it gets here.
    t.text('fingerprint').notNullable();
    t.text('name').nullable();
    t.text('hostname').nullable();
    t.timestamp('created_at', { useTz: true }).notNullable();
    // The last license fetch bound to it (the heartbeat).
    t.timestamp('last_seen_at', { useTz: true }).notNullable();
    // Offline (air-gapped) activations never call back: they hold their seat until their license expires.
    t.timestamp('expires_at', { useTz: true }).nullable();
    t.timestamp('released_at', { useTz: true }).nullable();
    t.text('release_reason').nullable();
    t.check("release_reason in ('customer', 'admin', 'stale')", [], 'license_activations_release_reason_check');
  });
  // One live activation per fingerprint and customer; released rows stay as history.
  await knex.raw('create unique index license_activations_live_unique on license_activations (customer_id, fingerprint) where released_at is null');
  await knex.raw('create index license_activations_live_seen_idx on license_activations (last_seen_at) where released_at is null');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('license_activations');
}
