import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('subscriptions', (t) => {
    t.uuid('id').primary();
    t.uuid('customer_id').notNullable().references('id').inTable('customers').onDelete('RESTRICT');
    t.uuid('plan_id').notNullable().references('id').inTable('plans').onDelete('RESTRICT');
    t.text('stripe_subscription_id').nullable().unique();
    // Stripe's words: incomplete, incomplete_expired, trialing, active, past_due, canceled, unpaid, paused.
    t.text('status').notNullable();
    t.timestamp('current_period_start', { useTz: true }).nullable();
    t.timestamp('current_period_end', { useTz: true }).nullable();
    t.boolean('cancel_at_period_end').notNullable().defaultTo(false);
    t.timestamp('canceled_at', { useTz: true }).nullable();
    t.timestamp('trial_end', { useTz: true }).nullable();
    // The Stripe event time (seconds) of the newest state applied: older data never overwrites it.
    t.bigInteger('stripe_state_at').nullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.check(
      "status in ('incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due', 'canceled', 'unpaid', 'paused')",
      [],
      'subscriptions_status_check',
    );
    t.index(['customer_id'], 'subscriptions_customer_idx');
    t.index(['plan_id'], 'subscriptions_plan_idx');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('subscriptions');
}
