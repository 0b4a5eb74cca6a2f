import type { Knex } from 'knex';

/**
 * Usage from sites that are never online (docs/USAGE.md, Air-gapped sites).
 *
 * license_activations.instance_key: the instance's Ed25519 public key (a JWK: kty, crv, x), given when
 * it activates (online or offline); instance_key_thumbprint is its RFC 7638 thumbprint, the `kid` its
 * usage bundles are signed under. Released rows keep theirs: a bundle is checked against the key of
 * the fingerprint's activation it names, and refused when that activation was released by the
 * customer or an admin (a deactivated instance).
 *
 * usage_bundles: one row per bundle applied, per customer and bundle id (the instance's UUID): its
 * seq and chain (`previous`, the digest of the bundle before it), its own digest (SHA-256 of the
 * file's JWS text, base64url), what became of its events, and the receipt answered (the same receipt
 * is answered when the same bundle comes again). (customer_id, fingerprint, seq) finds the gaps.
 *
 * usage_true_ups: late usage (events of a period Stripe has already invoiced, or more than 35 days
 * old) of one bundle and metric, billed as one Stripe invoice item on the customer's next invoice,
 * through this outbox (state pending -> sent | failed; `local` with Stripe off: the report alone).
 * usage_events.state gains `late`: such an event is never sent as a meter event.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('license_activations', (t) => {
    t.jsonb('instance_key').nullable();
    t.text('instance_key_thumbprint').nullable();
  });
  await knex.raw(
    `create index license_activations_instance_key on license_activations (customer_id, fingerprint, instance_key_thumbprint) where instance_key_thumbprint is not null`,
  );

  // NOT VALID, then VALIDATE: the new check is validated under SHARE UPDATE EXCLUSIVE, so writes go on meanwhile.
  await knex.raw(`alter table usage_events drop constraint usage_events_state_check`);
  await knex.raw(`alter table usage_events add constraint usage_events_state_check check (state in ('pending', 'sent', 'failed', 'local', 'late')) not valid`);
  await knex.raw(`alter table usage_events validate constraint usage_events_state_check`);

  await knex.schema.createTable('usage_bundles', (t) => {
    t.uuid('customer_id').notNullable().references('id').inTable('customers');
    t.uuid('bundle_id').notNullable();
    t.text('fingerprint').notNullable();
    t.integer('seq').notNullable();
    t.text('previous').nullable();
    t.text('digest').notNullable();
    t.text('instance_key_thumbprint').notNullable();
    t.timestamp('bundle_created_at', { useTz: true }).notNullable();
    t.integer('events').notNullable();
    t.integer('applied').notNullable();
    t.integer('duplicates').notNullable();
    t.integer('rejected').notNullable();
    t.integer('late').notNullable();
    t.boolean('previous_mismatch').notNullable().defaultTo(false);
    t.text('receipt').notNullable();
    t.text('uploaded_by').notNullable();
    t.timestamp('uploaded_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['customer_id', 'bundle_id']);
  });
  await knex.raw(`alter table usage_bundles add constraint usage_bundles_seq check (seq >= 1)`);
  await knex.raw(`alter table usage_bundles add constraint usage_bundles_uploaded_by check (uploaded_by in ('customer', 'admin'))`);
  await knex.raw(`create index usage_bundles_instance_seq on usage_bundles (customer_id, fingerprint, seq)`);

  await knex.schema.createTable('usage_true_ups', (t) => {
    t.uuid('id').primary();
    t.uuid('customer_id').notNullable().references('id').inTable('customers');
    t.uuid('bundle_id').notNullable();
    t.text('metric').notNullable();
    t.decimal('quantity', 20, 6).notNullable();
    t.integer('events').notNullable();
    t.timestamp('occurred_from', { useTz: true }).notNullable();
    t.timestamp('occurred_to', { useTz: true }).notNullable();
    t.text('state').notNullable();
    t.integer('attempts').notNullable().defaultTo(0);
    t.timestamp('next_attempt_at', { useTz: true }).nullable();
    t.text('last_error').nullable();
    t.text('stripe_price_id').nullable();
    t.text('stripe_invoice_item_id').nullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('sent_at', { useTz: true }).nullable();
    t.unique(['customer_id', 'bundle_id', 'metric']);
  });
  await knex.raw(`alter table usage_true_ups add constraint usage_true_ups_state check (state in ('pending', 'sent', 'failed', 'local'))`);
  await knex.raw(`create index usage_true_ups_due on usage_true_ups (next_attempt_at) where state = 'pending'`);
  await knex.raw(`create index usage_true_ups_customer on usage_true_ups (customer_id, created_at desc, id desc)`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('usage_true_ups');
  await knex.schema.dropTable('usage_bundles');
  // Late events go back to the only state the old check knows that is never sent again on its own.
  await knex.raw(`update usage_events set state = 'local' where state = 'late'`);
  await knex.raw(`alter table usage_events drop constraint usage_events_state_check`);
  await knex.raw(`alter table usage_events add constraint usage_events_state_check check (state in ('pending', 'sent', 'failed', 'local'))`);
  await knex.raw(`drop index if exists license_activations_instance_key`);
  await knex.schema.alterTable('license_activations', (t) => {
    t.dropColumn('instance_key_thumbprint');
    t.dropColumn('instance_key');
  });
}
