import type { Knex } from 'knex';

/**
 * Webhook deliveries: wake the delivery workers when work is written, and let them claim per endpoint.
 *
 * A statement-level trigger sends one NOTIFY on `webhook_deliveries` per statement that inserts
 * deliveries (events.emit, a resend's upsert), delivered on commit, so every instance's worker claims
 * at once instead of waiting for its next poll. The payload is empty: the notice only says "look".
 *
 * The index serves the claim, which takes each endpoint's due deliveries in turn (a lateral scan per
 * endpoint), so one endpoint's backlog never hides the others'.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    create function webhook_deliveries_notify() returns trigger language plpgsql as $$
    begin
      perform pg_notify('webhook_deliveries', '');
      return null;
    end $$`);
  await knex.raw(`
    create trigger webhook_deliveries_inserted
      after insert on webhook_deliveries
      for each statement execute function webhook_deliveries_notify()`);
  await knex.raw(
    `create index webhook_deliveries_endpoint_due_idx on webhook_deliveries (endpoint_id, next_attempt_at) where state = 'pending'`,
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index webhook_deliveries_endpoint_due_idx');
  await knex.raw('drop trigger webhook_deliveries_inserted on webhook_deliveries');
  await knex.raw('drop function webhook_deliveries_notify()');
}
