import type { Knex } from 'knex';
import type { UsageBundleRow } from '../../db/tables';

/** A usage bundle applied here (usage_bundles): what became of its events, and the receipt answered. */
export interface UsageBundle {
  customerId: string;
  bundleId: string;
  fingerprint: string;
  seq: number;
  previous: string | null;
  digest: string;
  instanceKeyThumbprint: string;
  bundleCreatedAt: Date;
  events: number;
  applied: number;
  duplicates: number;
  rejected: number;
  late: number;
  previousMismatch: boolean;
  receipt: string;
  uploadedBy: 'customer' | 'admin';
  uploadedAt: Date;
}

/** What the bundles of one instance (customer and fingerprint) say: the highest seq, the last upload, the seqs missing below it. */
export interface BundleSummary {
  lastSeq: number;
  lastUploadAt: Date;
  missingSeq: number[];
}

/** Missing seqs listed per instance, at most. */
export const MISSING_LISTED = 1000;

const toBundle = (r: UsageBundleRow): UsageBundle => ({
  customerId: r.customer_id,
  bundleId: r.bundle_id,
  fingerprint: r.fingerprint,
  seq: r.seq,
  previous: r.previous,
  digest: r.digest,
  instanceKeyThumbprint: r.instance_key_thumbprint,
  bundleCreatedAt: r.bundle_created_at,
  events: r.events,
  applied: r.applied,
  duplicates: r.duplicates,
  rejected: r.rejected,
  late: r.late,
  previousMismatch: r.previous_mismatch,
  receipt: r.receipt,
  uploadedBy: r.uploaded_by,
  uploadedAt: r.uploaded_at,
});

/**
 * Per instance of the customer among `fingerprints`: its highest seq, its last upload, and the seqs
 * from 1 to the highest never received, found from the gaps between the seqs held (never by counting
 * up to the highest, which may be 2^31 - 1): each gap lists at most MISSING_LISTED, each instance too.
 * bigint arithmetic: seq + 999 must not overflow an int. `withSeq`: one more seq of one instance
 * counted as held (a bundle whose row is written with its receipt, which names the gaps).
 */
const summariesSql = (withSeq: boolean) => `
with held as (
  select fingerprint, seq, uploaded_at from usage_bundles where customer_id = ? and fingerprint = any(?::text[])
  ${withSeq ? 'union all select ?::text, ?::int, now()' : ''}
), s as (
  select fingerprint, seq, max(uploaded_at) as uploaded_at from held group by fingerprint, seq
), gaps as (
  select fingerprint, coalesce(lag(seq) over (partition by fingerprint order by seq), 0)::bigint + 1 as from_seq, seq::bigint - 1 as to_seq
    from s
), missing as (
  select g.fingerprint, m.seq
    from gaps g cross join lateral generate_series(g.from_seq, least(g.to_seq, g.from_seq + ${MISSING_LISTED - 1})) as m(seq)
)
select s.fingerprint, max(s.seq) as last_seq, max(s.uploaded_at) as last_upload_at,
       coalesce((select array_agg(x.seq order by x.seq)
                   from (select m.seq from missing m where m.fingerprint = s.fingerprint order by m.seq limit ${MISSING_LISTED}) x), '{}')::int[] as missing_seq
  from s
 group by s.fingerprint`;
const SUMMARIES_SQL = summariesSql(false);
const SUMMARIES_WITH_SQL = summariesSql(true);

type SummaryRow = { fingerprint: string; last_seq: number; last_upload_at: Date; missing_seq: number[] };
const toSummary = (r: SummaryRow): BundleSummary => ({ lastSeq: r.last_seq, lastUploadAt: r.last_upload_at, missingSeq: r.missing_seq });

export function createUsageBundlesRepository() {
  return {
    /**
     * Serialises one instance's bundles (customer and fingerprint) until the caller's transaction
     * ends: the same bundle uploaded twice at once is applied once, and each upload sees the seqs
     * held before it when it counts the gaps.
     */
    async lock(trx: Knex, customerId: string, fingerprint: string): Promise<void> {
      await trx.raw(`select pg_advisory_xact_lock(hashtext('usage_bundles'), hashtext(?))`, [`${customerId}:${fingerprint}`]);
    },

    async find(db: Knex, customerId: string, bundleId: string): Promise<UsageBundle | null> {
      const row = await db('usage_bundles').where({ customer_id: customerId, bundle_id: bundleId }).first();
      return row ? toBundle(row) : null;
    },

    async insert(trx: Knex, b: Omit<UsageBundle, 'uploadedAt'>): Promise<void> {
      await trx('usage_bundles').insert({
        customer_id: b.customerId,
        bundle_id: b.bundleId,
        fingerprint: b.fingerprint,
        seq: b.seq,
        previous: b.previous,
        digest: b.digest,
        instance_key_thumbprint: b.instanceKeyThumbprint,
        bundle_created_at: b.bundleCreatedAt,
        events: b.events,
        applied: b.applied,
        duplicates: b.duplicates,
        rejected: b.rejected,
        late: b.late,
        previous_mismatch: b.previousMismatch,
        receipt: b.receipt,
        uploaded_by: b.uploadedBy,
      });
    },

    /** Whether a bundle of `seq` is held for the instance and none of them has the digest `previous` (null matches none). */
    async previousMismatch(db: Knex, customerId: string, fingerprint: string, seq: number, previous: string | null): Promise<boolean> {
      const { rows } = await db.raw<{ rows: { held: string; matching: string }[] }>(
        `select count(*) as held, count(*) filter (where digest = ?::text) as matching
           from usage_bundles where customer_id = ? and fingerprint = ? and seq = ?`,
        [previous, customerId, fingerprint, seq],
      );
      const r = rows[0]!;
      return Number(r.held) > 0 && Number(r.matching) === 0;
    },

    /** Each instance's summary (see summariesSql), by fingerprint; an instance without bundles is absent. One query. */
    async summaries(db: Knex, customerId: string, fingerprints: readonly string[]): Promise<Map<string, BundleSummary>> {
      if (fingerprints.length === 0) return new Map();
      const { rows } = await db.raw<{ rows: SummaryRow[] }>(SUMMARIES_SQL, [customerId, [...new Set(fingerprints)]]);
      return new Map(rows.map((r) => [r.fingerprint, toSummary(r)]));
    },

    /** The seqs of one instance missing below its highest, counting `seq` (the bundle being applied) as held. */
    async missingWith(db: Knex, customerId: string, fingerprint: string, seq: number): Promise<number[]> {
      const { rows } = await db.raw<{ rows: SummaryRow[] }>(SUMMARIES_WITH_SQL, [customerId, [fingerprint], fingerprint, seq]);
      return rows[0] ? toSummary(rows[0]).missingSeq : [];
    },
  };
}

export type UsageBundlesRepository = ReturnType<typeof createUsageBundlesRepository>;
