import type { Knex } from 'knex';

// When a subscription's payment started failing (it became past_due or unpaid), so a license's grace
// period runs from then and not from whenever the status was last rewritten. Cleared when it is paid.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('subscriptions', (t) => {
    t.timestamp('payment_failing_since', { useTz: true }).nullable();
  });
  // Rows already failing: Stripe starts a new period, then fails to collect its invoice.
  await knex.raw(`update subscriptions set payment_failing_since = coalesce(current_period_start, updated_at) where status in ('past_due', 'unpaid')`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('subscriptions', (t) => {
    t.dropColumn('payment_failing_since');
  });
}
