import type { Knex } from 'knex';
import type { ApiKeyRow, CustomerRow } from '../../db/tables';

export interface ApiKey {
  id: string;
  customerId: string;
  name: string | null;
  start: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  expiresAt: Date | null;
  revokedAt: Date | null;
}

/** What verification needs: the hash, and every reason the key might be refused. */
export interface KeyCandidate {
  id: string;
  secretHash: string;
  expiresAt: Date | null;
  revokedAt: Date | null;
  customerStatus: 'active' | 'deleted';
}

const PUBLIC_COLUMNS = ['id', 'customer_id', 'name', 'start', 'created_at', 'last_used_at', 'expires_at', 'revoked_at'] as const;

type PublicRow = Pick<ApiKeyRow, (typeof PUBLIC_COLUMNS)[number]>;

/** A key joined with its customer's status (the aliases leave Knex without the table types). */
type CandidateRow = Pick<ApiKeyRow, 'id' | 'secret_hash' | 'expires_at' | 'revoked_at'> & Pick<CustomerRow, 'status'>;

const toApiKey = (r: PublicRow): ApiKey => ({
  id: r.id,
  customerId: r.customer_id,
  name: r.name,
  start: r.start,
  createdAt: r.created_at,
  lastUsedAt: r.last_used_at,
  expiresAt: r.expires_at,
  revokedAt: r.revoked_at,
});

/** Neither revoked nor past its expiry, by the database's clock. */
const activeKeys = (db: Knex, customerId: string) =>
  db('api_keys')
    .where({ customer_id: customerId })
    .whereNull('revoked_at')
    .andWhere((w) => void w.whereNull('expires_at').orWhere('expires_at', '>', db.fn.now()));

export function createApiKeysRepository() {
  return {
    async insert(db: Knex, k: { id: string; customerId: string; name: string | null; secretHash: string; start: string }): Promise<ApiKey> {
      const [row] = await db('api_keys')
        .insert({ id: k.id, customer_id: k.customerId, name: k.name, secret_hash: k.secretHash, start: k.start })
        .returning([...PUBLIC_COLUMNS]);
      return toApiKey(row!);
    },

    async listForCustomer(db: Knex, customerId: string): Promise<ApiKey[]> {
      const rows = await db('api_keys')
        .select([...PUBLIC_COLUMNS])
        .where({ customer_id: customerId })
        .orderBy('id', 'desc');
      return rows.map(toApiKey);
    },

    /** The keys with these ids (any customer's), in id order. */
    async findMany(db: Knex, ids: readonly string[]): Promise<ApiKey[]> {
      if (ids.length === 0) return [];
      const rows = await db('api_keys')
        .select([...PUBLIC_COLUMNS])
        .whereIn('id', [...ids])
        .orderBy('id');
      return rows.map(toApiKey);
    },

    async findForCustomer(db: Knex, customerId: string, keyId: string): Promise<ApiKey | null> {
      const row = await db('api_keys')
        .select([...PUBLIC_COLUMNS])
        .where({ id: keyId, customer_id: customerId })
        .first();
      return row ? toApiKey(row) : null;
    },

    async countActive(db: Knex, customerId: string): Promise<number> {
      const row = await activeKeys(db, customerId).count<{ n: string }>({ n: '*' }).first();
      return Number(row?.n ?? 0);
    },

    /**
     * Ends the active keys of a customer: revoked now, or, with a grace period, expiring
     * then (a key already expiring sooner keeps its earlier expiry). Returns their ids.
     */
    async endActive(db: Knex, customerId: string, graceSeconds: number, exceptId?: string): Promise<string[]> {
      const q = activeKeys(db, customerId);
      if (exceptId) q.whereNot('id', exceptId);
      const rows =
        graceSeconds > 0
          ? await q.update(
              {
                expires_at: db.raw("least(coalesce(expires_at, 'infinity'::timestamptz), now() + make_interval(secs => ?))", [graceSeconds]),
              },
              ['id'],
            )
          : await q.update({ revoked_at: db.fn.now() }, ['id']);
      return rows.map((r) => r.id);
    },

    /** Several keys in one statement (a bulk rotation). */
    async insertMany(db: Knex, keys: { id: string; customerId: string; name: string | null; secretHash: string; start: string }[]): Promise<ApiKey[]> {
      if (keys.length === 0) return [];
      const rows = await db('api_keys')
        .insert(keys.map((k) => ({ id: k.id, customer_id: k.customerId, name: k.name, secret_hash: k.secretHash, start: k.start })))
        .returning([...PUBLIC_COLUMNS]);
      return rows.map(toApiKey);
    },

    /** Active keys per customer, for several customers in one query (customers without any are absent). */
    async countActiveByCustomer(db: Knex, customerIds: readonly string[]): Promise<Map<string, number>> {
      if (customerIds.length === 0) return new Map();
      const rows = await db('api_keys')
        .select('customer_id')
        .count<{ customer_id: string; n: string }[]>({ n: '*' })
        .whereIn('customer_id', [...customerIds])
        .whereNull('revoked_at')
        .andWhere((w) => void w.whereNull('expires_at').orWhere('expires_at', '>', db.fn.now()))
        .groupBy('customer_id');
      return new Map(rows.map((r) => [r.customer_id, Number(r.n)]));
    },

    /** endActive for several customers in one statement; returns the ended keys with their customer. */
    async endActiveForCustomers(db: Knex, customerIds: readonly string[], graceSeconds: number): Promise<{ id: string; customerId: string }[]> {
      if (customerIds.length === 0) return [];
      const q = db('api_keys')
        .whereIn('customer_id', [...customerIds])
        .whereNull('revoked_at')
        .andWhere((w) => void w.whereNull('expires_at').orWhere('expires_at', '>', db.fn.now()));
      const rows =
        graceSeconds > 0
          ? await q.update({ expires_at: db.raw("least(coalesce(expires_at, 'infinity'::timestamptz), now() + make_interval(secs => ?))", [graceSeconds]) }, [
              'id',
              'customer_id',
            ])
          : await q.update({ revoked_at: db.fn.now() }, ['id', 'customer_id']);
      return rows.map((r) => ({ id: r.id, customerId: r.customer_id }));
    },

    async revoke(db: Knex, customerId: string, keyId: string): Promise<ApiKey | null> {
      const [row] = await db('api_keys')
        .where({ id: keyId, customer_id: customerId })
        .update({ revoked_at: db.raw('coalesce(revoked_at, now())') }, [...PUBLIC_COLUMNS]);
      return row ? toApiKey(row) : null;
    },

    /** One indexed lookup by (customer, start); usually one candidate, so one bcrypt. */
    async findCandidates(db: Knex, customerId: string, start: string): Promise<KeyCandidate[]> {
      const rows = (await db('api_keys as k')
        .join('customers as c', 'c.id', 'k.customer_id')
        .select('k.id', 'k.secret_hash', 'k.expires_at', 'k.revoked_at', 'c.status')
        .where({ 'k.customer_id': customerId, 'k.start': start })) as CandidateRow[];
      return rows.map((r) => ({
        id: r.id,
        secretHash: r.secret_hash,
        expiresAt: r.expires_at,
        revokedAt: r.revoked_at,
        customerStatus: r.status,
      }));
    },

    /**
     * findCandidates, and whether the customer exists at all, in one query: the failed-authentication
     * limit keeps a counter only for customers that exist (random ids must not each cost a counter).
     */
    async findCandidatesOf(db: Knex, customerId: string, start: string): Promise<{ customerExists: boolean; candidates: KeyCandidate[] }> {
      const rows = (await db('customers as c')
        .leftJoin('api_keys as k', (j) => void j.on('k.customer_id', '=', 'c.id').andOn('k.start', '=', db.raw('?', [start])))
        .select('k.id', 'k.secret_hash', 'k.expires_at', 'k.revoked_at', 'c.status')
        .where('c.id', customerId)) as (Omit<CandidateRow, 'id'> & { id: string | null })[];
      return {
        customerExists: rows.length > 0,
        candidates: rows
          .filter((r) => r.id !== null)
          .map((r) => ({ id: r.id!, secretHash: r.secret_hash, expiresAt: r.expires_at, revokedAt: r.revoked_at, customerStatus: r.status })),
      };
    },

    /** The state of one key and its customer: the cheap re-check of a cached verdict. */
    async findState(db: Knex, keyId: string): Promise<Omit<KeyCandidate, 'secretHash'> | null> {
      const r = (await db('api_keys as k')
        .join('customers as c', 'c.id', 'k.customer_id')
        .select('k.id', 'k.expires_at', 'k.revoked_at', 'c.status')
        .where('k.id', keyId)
        .first()) as Omit<CandidateRow, 'secret_hash'> | undefined;
      return r ? { id: r.id, expiresAt: r.expires_at, revokedAt: r.revoked_at, customerStatus: r.status } : null;
    },

    /** Batched last-used stamps: one statement for many keys, never moving a stamp backwards. */
    async touchLastUsed(db: Knex, stamps: { id: string; at: Date }[]): Promise<void> {
      if (stamps.length === 0) return;
      const values = stamps.map(() => '(?::uuid, ?::timestamptz)').join(', ');
      await db.raw(
        `update api_keys k set last_used_at = greatest(coalesce(k.last_used_at, v.at), v.at)
           from (values ${values}) as v(id, at) where k.id = v.id`,
        stamps.flatMap((s) => [s.id, s.at.toISOString()]),
      );
    },
  };
}

export type ApiKeysRepository = ReturnType<typeof createApiKeysRepository>;
