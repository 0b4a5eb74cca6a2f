import type { ActivationReleaseReason, ActivationRow } from '../../db/tables';
import type { Knex } from 'knex';

export type ReleaseReason = ActivationReleaseReason;

export interface Activation {
  id: string;
  customerId: string;
  fingerprint: string;
  name: string | null;
  hostname: string | null;
  createdAt: Date;
  lastSeenAt: Date;
  /** Offline activations: the end of the license issued for them. */
  expiresAt: Date | null;
  releasedAt: Date | null;
  releaseReason: ReleaseReason | null;
}

const toActivation = (r: ActivationRow): Activation => ({
  id: r.id,
  customerId: r.customer_id,
  fingerprint: r.fingerprint,
  name: r.name,
  hostname: r.hostname,
  createdAt: r.created_at,
  lastSeenAt: r.last_seen_at,
  expiresAt: r.expires_at,
  releasedAt: r.released_at,
  releaseReason: r.release_reason,
});

/**
 * Liveness, in one place: an unreleased activation holds its seat while it was seen since `cutoff`
 * or its offline license has not expired at `now`. Times come from the service's clock.
 */
const LIVE = '(a.last_seen_at >= ? or (a.expires_at is not null and a.expires_at > ?))';

export interface Clock {
  now: Date;
  /** Seen before this: stale. */
  cutoff: Date;
}

export function createActivationsRepository() {
  const table = (db: Knex) => db('license_activations as a');

  return {
    /**
     * Locks the customer's row for the rest of the transaction: activations of one customer are
     * counted and inserted one transaction at a time, so the seat limit holds under concurrency.
     */
    async lockCustomer(trx: Knex, customerId: string): Promise<{ status: 'active' | 'deleted' } | null> {
      const row = await trx('customers').where({ id: customerId }).forUpdate().first<{ status: 'active' | 'deleted' } | undefined>('status');
      return row ?? null;
    },

    /** Releases every unreleased activation that is no longer live (of one customer, or all); returns them. */
    async releaseStale(db: Knex, clock: Clock, customerId?: string): Promise<Activation[]> {
      const { rows } = await db.raw<{ rows: ActivationRow[] }>(
        `update license_activations as a set released_at = ?, release_reason = 'stale'
          where a.released_at is null and not ${LIVE}${customerId ? ' and a.customer_id = ?' : ''}
          returning a.*`,
        [clock.now, clock.cutoff, clock.now, ...(customerId ? [customerId] : [])],
      );
      return rows.map(toActivation);
    },

    async countLive(db: Knex, customerId: string, clock: Clock): Promise<number> {
      const row = await table(db)
        .where('a.customer_id', customerId)
        .whereNull('a.released_at')
        .whereRaw(LIVE, [clock.cutoff, clock.now])
        .count<{ n: string }>({ n: '*' })
        .first();
      return Number(row?.n ?? 0);
    },

    /** Every live activation, for the gauge. */
    async countAllLive(db: Knex, clock: Clock): Promise<number> {
      const row = await table(db).whereNull('a.released_at').whereRaw(LIVE, [clock.cutoff, clock.now]).count<{ n: string }>({ n: '*' }).first();
      return Number(row?.n ?? 0);
    },

    async insert(db: Knex, a: Pick<Activation, 'id' | 'customerId' | 'fingerprint' | 'name' | 'hostname' | 'expiresAt'> & { at: Date }): Promise<Activation> {
      const [row] = await db('license_activations')
        .insert({
          id: a.id,
          customer_id: a.customerId,
          fingerprint: a.fingerprint,
          name: a.name,
          hostname: a.hostname,
          created_at: a.at,
          last_seen_at: a.at,
          expires_at: a.expiresAt,
        })
        .returning('*');
      return toActivation(row!);
    },

    /**
     * The heartbeat: stamps a live activation as seen now (and extends an offline one's expiry when
     * given). Returns it, or null when the fingerprint is no live activation of the customer.
     */
    async touch(db: Knex, customerId: string, fingerprint: string, clock: Clock, expiresAt?: Date): Promise<Activation | null> {
      const { rows } = await db.raw<{ rows: ActivationRow[] }>(
        `update license_activations as a set last_seen_at = ?${expiresAt ? ', expires_at = greatest(coalesce(a.expires_at, ?), ?)' : ''}
          where a.customer_id = ? and a.fingerprint = ? and a.released_at is null and ${LIVE}
          returning a.*`,
        [clock.now, ...(expiresAt ? [expiresAt, expiresAt] : []), customerId, fingerprint, clock.cutoff, clock.now],
      );
      const row = rows[0];
      return row ? toActivation(row) : null;
    },

    async listLive(db: Knex, customerId: string, clock: Clock): Promise<Activation[]> {
      const rows = await table(db)
        .select('a.*')
        .where('a.customer_id', customerId)
        .whereNull('a.released_at')
        .whereRaw(LIVE, [clock.cutoff, clock.now])
        .orderBy('a.created_at', 'asc')
        .orderBy('a.id', 'asc');
      return rows.map(toActivation);
    },

    async release(db: Knex, customerId: string, fingerprint: string, reason: ReleaseReason, at: Date): Promise<Activation | null> {
      const [row] = await db('license_activations')
        .where({ customer_id: customerId, fingerprint })
        .whereNull('released_at')
        .update({ released_at: at, release_reason: reason })
        .returning('*');
      return row ? toActivation(row) : null;
    },
  };
}

export type ActivationsRepository = ReturnType<typeof createActivationsRepository>;
