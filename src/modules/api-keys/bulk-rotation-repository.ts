import type { Knex } from 'knex';

// bulk_rotation_keys (20261206230000)
export interface BulkRotationKeyRow {
  idempotency_key: string;
  customer_id: string;
  key_id: string;
  created_at: Date;
}
declare module 'knex/types/tables' {
  interface Tables {
    bulk_rotation_keys: Knex.CompositeTableType<
      BulkRotationKeyRow,
      Omit<BulkRotationKeyRow, 'created_at'>,
      Pick<BulkRotationKeyRow, 'key_id'> & { created_at?: Knex.Raw }
    >;
  }
}

/** How long a run can be resumed: a lost answer is noticed within minutes, not days. */
const KEPT_DAYS = 7;

/** The keys each bulk rotation run (by its Idempotency-Key) made, by customer. */
export function createBulkRotationRepository() {
  return {
    /** The key this run made for each of these customers, if it made one. */
    async keysOfRun(db: Knex, idempotencyKey: string, customerIds: readonly string[]): Promise<Map<string, string>> {
      if (customerIds.length === 0) return new Map();
      const rows = await db('bulk_rotation_keys')
        .select('customer_id', 'key_id')
        .where({ idempotency_key: idempotencyKey })
        .whereIn('customer_id', [...customerIds])
        .andWhere('created_at', '>', db.raw(`now() - interval '${KEPT_DAYS} days'`));
      return new Map(rows.map((r) => [r.customer_id, r.key_id]));
    },

    /** Records (or replaces) the key this run made for each customer; forgets runs past resuming. */
    async record(db: Knex, idempotencyKey: string, keys: readonly { customerId: string; keyId: string }[]): Promise<void> {
      await db('bulk_rotation_keys')
        .where('created_at', '<', db.raw(`now() - interval '${KEPT_DAYS} days'`))
        .delete();
      if (keys.length === 0) return;
      await db('bulk_rotation_keys')
        .insert(keys.map((k) => ({ idempotency_key: idempotencyKey, customer_id: k.customerId, key_id: k.keyId })))
        .onConflict(['idempotency_key', 'customer_id'])
        .merge({ key_id: db.raw('excluded.key_id') as unknown as string, created_at: db.fn.now() });
    },

    /** Revokes keys at once (the keys a lost answer carried: nobody ever saw them). */
    async revokeNow(db: Knex, keyIds: readonly string[]): Promise<{ id: string; customerId: string }[]> {
      if (keyIds.length === 0) return [];
      const rows = await db('api_keys')
        .whereIn('id', [...keyIds])
        .whereNull('revoked_at')
        .update({ revoked_at: db.fn.now() }, ['id', 'customer_id']);
      return rows.map((r) => ({ id: r.id, customerId: r.customer_id }));
    },
  };
}

export type BulkRotationRepository = ReturnType<typeof createBulkRotationRepository>;
