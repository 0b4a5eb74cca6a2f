import type { Knex } from 'knex';

// request_id is always the id the service made for the request; the id a client sent in
// X-Request-Id (when sane) is kept beside it, so the client can correlate but never choose ours.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('audit_log', (t) => {
    t.text('client_request_id').nullable();
    t.index(['client_request_id'], 'audit_log_client_request_idx');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('audit_log', (t) => {
    t.dropIndex(['client_request_id'], 'audit_log_client_request_idx');
    t.dropColumn('client_request_id');
  });
}
