import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('audit_log', (t) => {
    t.bigIncrements('id').primary();
    t.timestamp('at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.text('actor').notNullable();
    t.text('actor_id').nullable();
    t.text('action').notNullable();
    t.text('outcome').notNullable();
    t.text('target_type').nullable();
    t.text('target_id').nullable();
    t.text('ip').nullable();
    t.text('request_id').nullable();
    t.jsonb('details').notNullable().defaultTo('{}');
    t.check("actor in ('admin', 'customer', 'stripe', 'system')", [], 'audit_log_actor_check');
    t.check("outcome in ('success', 'failure', 'denied')", [], 'audit_log_outcome_check');
    t.index(['at'], 'audit_log_at_idx');
    t.index(['action', 'id'], 'audit_log_action_idx');
    t.index(['target_id', 'id'], 'audit_log_target_idx');
    t.index(['actor', 'actor_id', 'id'], 'audit_log_actor_idx');
    t.index(['request_id'], 'audit_log_request_idx');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('audit_log');
}
