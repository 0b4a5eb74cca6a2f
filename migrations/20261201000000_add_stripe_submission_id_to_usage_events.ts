import type { Knex } from 'knex';

// Which Stripe call carried each event: our own id for the submission (a meter event stream call of
// up to 100 events), logged with Stripe's request id, so an event can be traced to the call and a
// call to its events. Not indexed: it is looked up by hand, and every index slows the outbox.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('usage_events', (t) => {
    t.uuid('stripe_submission_id').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('usage_events', (t) => {
    t.dropColumn('stripe_submission_id');
  });
}
