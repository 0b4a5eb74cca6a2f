import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('plans', (t) => {
    t.uuid('id').primary();
    t.text('code').notNullable().unique();
    t.text('name').notNullable();
    // Validated by a schema at the edge: {features: [...], limits: {...}, seats?}.
    t.jsonb('entitlements').notNullable();
    t.text('stripe_price_id').nullable();
    // {metric: Stripe price id} for metered usage billed on this plan.
    t.jsonb('metered_prices').notNullable().defaultTo('{}');
    t.text('status').notNullable().defaultTo('active');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.check("status in ('active', 'archived')", [], 'plans_status_check');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('plans');
}
