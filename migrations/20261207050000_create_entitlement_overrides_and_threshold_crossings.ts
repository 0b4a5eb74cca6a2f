import type { Knex } from 'knex';

/**
 * A customer's own deal and the usage thresholds it has been told of.
 *
 * customer_entitlement_overrides: at most one set of overrides per customer (PUT replaces it, DELETE
 * removes it), kept as the API takes them (`terms`), with a note and an optional end. Past
 * `expires_at` they stop applying by themselves (every reader compares it with its clock); the
 * expiry job only announces it once (`expiry_announced_at`).
 *
 * usage_threshold_crossings: each threshold (and the end of each allowance's tolerance) a customer's
 * period usage has crossed, once: the watch inserts with ON CONFLICT DO NOTHING and writes the event
 * only when its insert happened, in the same transaction, so however many instances see the crossing
 * at once exactly one of them announces it. The allowance is part of the key: a deal changed during
 * the period is told again against its new allowance. A new period has a new period_start: it starts clean.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('customer_entitlement_overrides', (t) => {
    t.uuid('customer_id').primary().references('id').inTable('customers').onDelete('CASCADE');
    t.jsonb('terms').notNullable();
    t.text('note').nullable();
    t.timestamp('expires_at', { useTz: true }).nullable();
    t.timestamp('expiry_announced_at', { useTz: true }).nullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw(
    `create index customer_entitlement_overrides_expiring on customer_entitlement_overrides (expires_at)
      where expires_at is not null and expiry_announced_at is null`,
  );

  await knex.schema.createTable('usage_threshold_crossings', (t) => {
    t.uuid('customer_id').notNullable().references('id').inTable('customers').onDelete('CASCADE');
    t.text('metric').notNullable();
    t.timestamp('period_start', { useTz: true }).notNullable();
    t.timestamp('period_end', { useTz: true }).notNullable();
    t.bigInteger('allowance').notNullable();
    t.text('kind').notNullable(); // threshold | exhausted
    t.integer('percent').notNullable(); // the threshold; for exhausted, where the policy stops (100 for block, 125 for 1.25)
    t.decimal('quantity', 30, 6).notNullable(); // the period's usage when the crossing was seen
    t.text('event_id').nullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['customer_id', 'metric', 'period_start', 'allowance', 'kind', 'percent']);
  });
  await knex.raw(`alter table usage_threshold_crossings add constraint usage_threshold_crossings_kind check (kind in ('threshold', 'exhausted'))`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('usage_threshold_crossings');
  await knex.schema.dropTable('customer_entitlement_overrides');
}
