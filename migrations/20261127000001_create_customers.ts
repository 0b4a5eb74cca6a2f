import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('customers', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.text('email').notNullable();
    t.text('company_name').notNullable();
    t.text('stripe_customer_id').nullable().unique();
    t.text('status').notNullable().defaultTo('active');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('deleted_at', { useTz: true }).nullable();
    t.check("status in ('active', 'deleted')", [], 'customers_status_check');
  });
  // Case-insensitive uniqueness among live customers: a deleted customer's address can be reused.
  await knex.raw(
    "create unique index customers_email_active_unique on customers (lower(email)) where status = 'active'",
  );
  await knex.raw('create index customers_email_lower_idx on customers (lower(email))');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('customers');
}
