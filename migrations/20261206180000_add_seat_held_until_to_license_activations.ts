import type { Knex } from 'knex';

// A seat stays taken until the last license bound to the activation has expired, released or not:
// releasing and activating again must never give more valid licenses than the plan has seats.
// Every bound license issued (online or offline) moves it forward to that license's exp.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('license_activations', (t) => {
    t.timestamp('seat_held_until', { useTz: true }).nullable();
  });
  // Offline licenses issued so far end at expires_at; online ones are valid at most LICENSE_TTL after the
  // last heartbeat, which the default 7 days bounds (a longer TTL is caught up by the next fetch).
  await knex.raw(
    `update license_activations set seat_held_until = greatest(coalesce(expires_at, last_seen_at + interval '7 days'), last_seen_at + interval '7 days')`,
  );
  await knex.raw('create index license_activations_seat_held_idx on license_activations (customer_id, seat_held_until) where seat_held_until is not null');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists license_activations_seat_held_idx');
  await knex.schema.alterTable('license_activations', (t) => {
    t.dropColumn('seat_held_until');
  });
}
