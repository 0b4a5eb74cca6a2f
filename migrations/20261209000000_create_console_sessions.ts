import type { Knex } from 'knex';

/**
 * Admin console sessions (src/modules/console). The cookie holds a random id; the table holds only
 * its SHA-256, so a copy of the table (a backup, a replica) signs no one in. Kept in the database so
 * every instance sees a sign-in, a sign-out and a revocation at once. `token_fingerprint` names the
 * admin token the session was exchanged for (`admin:<12 hex>`, as audit rows do): a session whose
 * token is no longer in ADMIN_API_TOKEN is refused and revoked.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`create table console_sessions (
    id_hash bytea primary key check (octet_length(id_hash) = 32),
    token_fingerprint text not null,
    created_at timestamptz not null,
    last_seen_at timestamptz not null,
    expires_at timestamptz not null,
    revoked_at timestamptz,
    revoked_reason text check (revoked_reason in ('sign_out', 'expired', 'token_removed', 'replaced')),
    ip text,
    user_agent text
  )`);
  // Old rows are deleted at sign-in by their expiry.
  await knex.raw('create index console_sessions_expires_at on console_sessions (expires_at)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop table console_sessions');
}
