import type { Knex } from 'knex';

/**
 * What the customer's people can see of their bill.
 *
 * invoices: our copy of each Stripe invoice of a customer of ours, written from Stripe's invoice
 * webhooks (each re-read from Stripe) and by reconciliation. One row per Stripe invoice; the state
 * read last wins (`stripe_state_at`: a state read earlier never overwrites one read later), and a
 * status never moves back (a paid or void invoice stays so whatever arrives after). Amounts are in
 * the currency's minor units, as Stripe gives them. `lines` is the invoice's lines as the API shows
 * them (description, quantity, amount, price, metric, period). Listing is newest first by Stripe's
 * `created`, a customer's own: (customer_id, stripe_created_at desc, id desc).
 *
 * plans.local_pricing: what a plan costs for a local estimate of the period's charges (Stripe off):
 * `{currency, unit_amount, metered: {metric: unit_amount_decimal}}`, null when the plan has none.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('invoices', (t) => {
    t.uuid('id').primary();
    t.uuid('customer_id').notNullable().references('id').inTable('customers');
    t.text('stripe_invoice_id').notNullable().unique();
    t.uuid('subscription_id').nullable().references('id').inTable('subscriptions');
    t.text('stripe_subscription_id').nullable();
    t.text('number').nullable();
    t.text('status').notNullable();
    t.text('currency').notNullable();
    t.bigInteger('amount_due').notNullable();
    t.bigInteger('amount_paid').notNullable();
    t.bigInteger('amount_remaining').notNullable();
    t.bigInteger('subtotal').notNullable();
    t.bigInteger('tax').notNullable();
    t.bigInteger('total').notNullable();
    t.timestamp('period_start', { useTz: true }).nullable();
    t.timestamp('period_end', { useTz: true }).nullable();
    t.timestamp('due_date', { useTz: true }).nullable();
    t.text('hosted_invoice_url').nullable();
    t.text('invoice_pdf').nullable();
    t.jsonb('lines').notNullable().defaultTo('[]');
    t.timestamp('stripe_created_at', { useTz: true }).notNullable();
    t.timestamp('finalized_at', { useTz: true }).nullable();
    t.timestamp('paid_at', { useTz: true }).nullable();
    t.timestamp('voided_at', { useTz: true }).nullable();
    t.timestamp('marked_uncollectible_at', { useTz: true }).nullable();
    t.timestamp('stripe_state_at', { useTz: true }).notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw(`alter table invoices add constraint invoices_status check (status in ('draft', 'open', 'paid', 'void', 'uncollectible'))`);
  await knex.raw(`create index invoices_customer_newest on invoices (customer_id, stripe_created_at desc, id desc)`);

  await knex.schema.alterTable('plans', (t) => {
    t.jsonb('local_pricing').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('plans', (t) => {
    t.dropColumn('local_pricing');
  });
  await knex.schema.dropTable('invoices');
}
