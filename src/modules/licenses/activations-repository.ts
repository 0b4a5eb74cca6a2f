import { jsonb, type ActivationReleaseReason, type ActivationRow, type InstanceKeyJwk } from '../../db/tables';
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
  /** The exp of the last license bound to it: the seat is held until then, released or not. */
  seatHeldUntil: Date | null;
  /** The instance's public key (its usage bundles are signed with its private key), and its RFC 7638 thumbprint. */
  instanceKey: InstanceKeyJwk | null;
  instanceKeyThumbprint: string | null;
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
  seatHeldUntil: r.seat_held_until ?? null,
  instanceKey: r.instance_key ?? null,
  instanceKeyThumbprint: r.instance_key_thumbprint ?? null,
});

/**
 * Liveness, in one place: an unreleased activation holds its seat while it was seen since `cutoff`
 * or its offline license has not expired at `now`. Times come from the service's clock.
 */
const LIVE = '(a.last_seen_at >= ? or (a.expires_at is not null and a.expires_at > ?))';
/**
 * A seat is held by a live activation, and by any activation (released or stale too) while a license
 * bound to it is still valid: releasing never frees a seat whose licenses still verify somewhere.
 */
const HOLDS = `((a.released_at is null and ${LIVE}) or a.seat_held_until > ?)`;

export interface Clock {
  now: Date;
  /** Seen before this: stale. */
  cutoff: Date;
}

/** One instance (fingerprint) holding a seat, and the latest moment its seat can free without anyone acting. */
export interface SeatHolder {
  fingerprint: string;
  freesAt: Date;
}

const later = (...ds: (Date | null)[]) => new Date(Math.max(...ds.filter((d): d is Date => d !== null).map((d) => d.getTime())));

export function createActivationsRepository() {
  const table = (db: Knex) => db('license_activations as a');

  return {
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

    /**
     * The instances holding one of the customer's seats, one entry per fingerprint (a fingerprint
     * released and activated again is one instance), each with when its seat frees at the latest:
     * its last bound license's exp, and for a live activation also the end of its heartbeat window
     * (or of its offline license).
     */
    async seatHolders(db: Knex, customerId: string, clock: Clock): Promise<SeatHolder[]> {
      const rows: ActivationRow[] = await table(db).select('a.*').where('a.customer_id', customerId).whereRaw(HOLDS, [clock.cutoff, clock.now, clock.now]);
      const window = clock.now.getTime() - clock.cutoff.getTime();
      const byFingerprint = new Map<string, Date>();
      for (const r of rows) {
        const frees = r.released_at === null ? later(new Date(r.last_seen_at.getTime() + window), r.expires_at, r.seat_held_until) : later(r.seat_held_until);
        const held = byFingerprint.get(r.fingerprint);
        byFingerprint.set(r.fingerprint, held ? later(held, frees) : frees);
      }
      return [...byFingerprint].map(([fingerprint, freesAt]) => ({ fingerprint, freesAt }));
    },

    /** Every live activation, for the gauge. */
    async countAllLive(db: Knex, clock: Clock): Promise<number> {
      const row = await table(db).whereNull('a.released_at').whereRaw(LIVE, [clock.cutoff, clock.now]).count<{ n: string }>({ n: '*' }).first();
      return Number(row?.n ?? 0);
    },

    async insert(
      db: Knex,
      a: Pick<Activation, 'id' | 'customerId' | 'fingerprint' | 'name' | 'hostname' | 'expiresAt' | 'instanceKey' | 'instanceKeyThumbprint'> & { at: Date },
    ): Promise<Activation> {
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
          // An offline activation's license is issued with it: its seat is held until that license ends.
          seat_held_until: a.expiresAt,
          instance_key: a.instanceKey ? jsonb(a.instanceKey) : null,
          instance_key_thumbprint: a.instanceKeyThumbprint,
        })
        .returning('*');
      return toActivation(row!);
    },

    /**
     * The heartbeat: stamps a live activation as seen now, and when a license bound to it is about
     * to be issued, holds its seat until that license's exp (`seatHeldUntil`; an offline one's
     * expiry moves too with `expiresAt`). One statement, so a release racing it either comes first
     * (then nothing is issued) or finds the seat already held. Returns the activation, or null when
     * the fingerprint is no live activation of the customer.
     */
    async touch(
      db: Knex,
      customerId: string,
      fingerprint: string,
      clock: Clock,
      hold: { seatHeldUntil?: Date; expiresAt?: Date } = {},
    ): Promise<Activation | null> {
      const sets = ['last_seen_at = ?'];
      const values: Date[] = [clock.now];
      if (hold.expiresAt) {
        sets.push('expires_at = greatest(coalesce(a.expires_at, ?), ?)');
        values.push(hold.expiresAt, hold.expiresAt);
      }
      if (hold.seatHeldUntil) {
        sets.push('seat_held_until = greatest(coalesce(a.seat_held_until, ?), ?)');
        values.push(hold.seatHeldUntil, hold.seatHeldUntil);
      }
      const { rows } = await db.raw<{ rows: ActivationRow[] }>(
        `update license_activations as a set ${sets.join(', ')}
          where a.customer_id = ? and a.fingerprint = ? and a.released_at is null and ${LIVE}
          returning a.*`,
        [...values, customerId, fingerprint, clock.cutoff, clock.now],
      );
      const row = rows[0];
      return row ? toActivation(row) : null;
    },

    /** The activations holding a seat (live ones, and released ones whose licenses are still valid), oldest first. */
    async listHolding(db: Knex, customerId: string, clock: Clock): Promise<Activation[]> {
      const rows = await table(db)
        .select('a.*')
        .where('a.customer_id', customerId)
        .whereRaw(HOLDS, [clock.cutoff, clock.now, clock.now])
        .orderBy('a.created_at', 'asc')
        .orderBy('a.id', 'asc');
      return rows.map(toActivation);
    },

    /** The unreleased activation of this fingerprint, locked for the rest of the transaction. */
    async findUnreleased(trx: Knex, customerId: string, fingerprint: string): Promise<Activation | null> {
      const row = await trx('license_activations').where({ customer_id: customerId, fingerprint }).whereNull('released_at').forUpdate().first();
      return row ? toActivation(row) : null;
    },

    /**
     * Gives an activation that has no instance key the one its instance now sends (an instance
     * activated before it had one). Returns the activation; one that already has a key keeps it.
     */
    async setInstanceKey(db: Knex, id: string, key: InstanceKeyJwk, thumbprint: string): Promise<Activation | null> {
      const [row] = await db('license_activations')
        .where({ id })
        .whereNull('instance_key_thumbprint')
        .update({ instance_key: jsonb(key), instance_key_thumbprint: thumbprint })
        .returning('*');
      return row ? toActivation(row) : null;
    },

    /**
     * The activations of a fingerprint holding the key with this thumbprint, newest first (released
     * ones too: whether the release was a deactivation is the caller's to judge).
     */
    async findByInstanceKey(db: Knex, customerId: string, fingerprint: string, thumbprint: string): Promise<Activation[]> {
      const rows = await db('license_activations')
        .where({ customer_id: customerId, fingerprint, instance_key_thumbprint: thumbprint })
        .orderBy('created_at', 'desc')
        .orderBy('id', 'desc');
      return rows.map(toActivation);
    },

    async release(db: Knex, id: string, reason: ReleaseReason, at: Date): Promise<Activation> {
      const [row] = await db('license_activations').where({ id }).update({ released_at: at, release_reason: reason }).returning('*');
      return toActivation(row!);
    },
  };
}

export type ActivationsRepository = ReturnType<typeof createActivationsRepository>;
