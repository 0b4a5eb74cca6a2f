import type { Knex } from 'knex';

/**
 * The time-driven license events (license.expiring_soon, license.expired) are each sent once per
 * episode: an episode is the customer, the kind and the moment validity ends (`ends_at`; a renewal
 * moves it later, so it is a new episode). The notice job inserts here with ON CONFLICT DO NOTHING
 * and writes the event only when its insert happened, in the same transaction: however many
 * instances run the job at once, the unique key lets exactly one of them announce an episode.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('license_notices', (t) => {
    t.uuid('customer_id').notNullable().references('id').inTable('customers').onDelete('CASCADE');
    t.text('kind').notNullable(); // expiring_soon | expired
    t.timestamp('ends_at', { useTz: true }).notNullable();
    t.uuid('subscription_id').nullable(); // the subscription the license came from (information only)
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['customer_id', 'kind', 'ends_at']);
  });
  await knex.raw(`alter table license_notices add constraint license_notices_kind check (kind in ('expiring_soon', 'expired'))`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('license_notices');
}
