import { createPublicKey, randomUUID } from 'node:crypto';
import { compactVerify, decodeJwt } from 'jose';
import type { Knex } from 'knex';
import { isUniqueViolation } from '../../db/db-errors';
import { AppError } from '../../errors/app-error';
import type { ActorContext } from '../../lib/request-context';
import type { AuditService } from '../audit/audit-service';
import type { CustomerLookup } from '../customers/customer-lookup';
import type { EventEmitter } from '../events/events-service';
import type { LicenseSigner } from '../licenses/license-signer';
import type { IssuedLicense, LicensesService } from '../licenses/licenses-service';
import type { TrueUpsService } from '../true-ups/true-ups-service';
import type { UsageService } from '../usage/usage-service';
import { checkEvents, parseBundle, RECEIPT_TYP, type BundleEvent, type ParsedBundle, type RejectedEvent } from './bundle-format';
import type { UsageBundleReceipt } from './usage-bundles-schemas';
import type { BundleSummary, UsageBundlesRepository } from './usage-bundles-repository';

export interface UsageBundlesServiceDeps {
  db: Knex;
  repo: UsageBundlesRepository;
  customers: Pick<CustomerLookup, 'assertActive'>;
  licenses: Pick<LicensesService, 'instanceKeyActivations' | 'issueOffline'>;
  usage: Pick<UsageService, 'recordInTransaction'>;
  trueUps: Pick<TrueUpsService, 'lateCutoff' | 'recordLate'>;
  signer: Pick<LicenseSigner, 'signTyped'>;
  events: EventEmitter;
  audit: AuditService;
  settings: {
    /** The receipts' iss: the licenses' issuer. */
    issuer: string;
    metrics: readonly string[];
    maxEvents: number;
  };
  now?: () => number;
}

export interface UploadInput {
  /** The customer the bundle is uploaded for: the key's, or the admin path's. */
  customerId: string;
  uploadedBy: 'customer' | 'admin';
  /** The bundle file's text. */
  text: string;
}

export interface UploadResult {
  receipt: string;
  claims: UsageBundleReceipt;
  /** The same bundle again: the stored receipt, nothing applied. */
  replayed: boolean;
  license: IssuedLicense | null;
  licenseError: { code: string; message: string } | null;
}

type InstanceKey = NonNullable<Awaited<ReturnType<LicensesService['instanceKeyActivations']>>[number]['instanceKey']>;

/** The fresh license that comes with a receipt: as an offline activation's (its default TTL), capped by validity and grace. */
const LICENSE_TTL_SECONDS = 365 * 86_400;
const DEADLOCK = '40P01';
const sec = (ms: number) => Math.floor(ms / 1000);

/**
 * Usage bundles: usage from instances that never reach the service, carried in a file signed by the
 * instance's key (docs/USAGE.md, Air-gapped sites).
 *
 * Every check runs before anything is written, in one fixed order (parseBundle's, then the customer
 * the bundle names, the instance key, the signature, each event), so a refused bundle leaves no
 * trace but its audit row. Then one transaction, serialised per instance (customer and fingerprint)
 * by an advisory lock: the events through the same write as POST /api/usage (an event is stored once
 * whether it came online, in one bundle or in three uploads of it), late ones marked and recorded as
 * true-ups, the bundle's row with its signed receipt, the gap event and the audit row. The same
 * bundle again answers the receipt stored with it. The fresh license is issued after the commit,
 * like an offline activation's: when it cannot be, the receipt is answered anyway.
 */
export function createUsageBundlesService(deps: UsageBundlesServiceDeps) {
  const { db, repo, customers, licenses, usage, trueUps, signer, events, audit, settings } = deps;
  const now = deps.now ?? Date.now;

  /** The activation whose key signed the bundle: one holding that key, not released by the customer or an admin. */
  async function instanceKeyOf(customerId: string, bundle: ParsedBundle): Promise<InstanceKey> {
    const found = await licenses.instanceKeyActivations(db, customerId, bundle.payload.fingerprint, bundle.kid);
    const withKey = found.filter((a) => a.instanceKey !== null);
    if (withKey.length === 0) {
      throw new AppError(
        'INSTANCE_KEY_UNKNOWN',
        'No activation of the instance the bundle names (its fingerprint) holds the key its header names (kid): activate the instance with its instance key first',
      );
    }
    // Released as stale still counts: an air-gapped instance never calls back, its activation goes stale by itself.
    const usable = withKey.find((a) => a.releasedAt === null || a.releaseReason === 'stale');
    if (!usable) {
      throw new AppError(
        'INSTANCE_DEACTIVATED',
        'This instance was deactivated (released by the customer or an admin): its usage bundles are no longer taken; activate it again to send them',
      );
    }
    return usable.instanceKey!;
  }

  async function verifySignature(bundle: ParsedBundle, key: InstanceKey): Promise<void> {
    try {
      await compactVerify(bundle.jws, createPublicKey({ key: { kty: key.kty, crv: key.crv, x: key.x }, format: 'jwk' }), { algorithms: ['EdDSA'] });
    } catch {
      throw new AppError(
        'BUNDLE_SIGNATURE_INVALID',
        'The usage bundle’s signature does not verify against the instance key its header names: it was changed after it was signed, or signed by another key',
      );
    }
  }

  /** Applies a checked bundle in the caller's transaction: its receipt, and what to do once committed. */
  async function apply(
    trx: Knex,
    ctx: ActorContext,
    input: UploadInput,
    bundle: ParsedBundle,
    checked: { valid: BundleEvent[]; rejected: RejectedEvent[] },
    lateBefore: Date,
  ): Promise<{ receipt: string; replayed: boolean; afterCommit?: () => void }> {
    const { customerId } = input;
    const p = bundle.payload;
    const about = { customer_id: customerId, bundle_id: p.bundleId, seq: p.seq, fingerprint: p.fingerprint };
    await repo.lock(trx, customerId, p.fingerprint);

    const held = await repo.find(trx, customerId, p.bundleId);
    if (held) {
      if (held.digest !== bundle.digest) {
        throw new AppError('BUNDLE_CONFLICT', 'Another usage bundle with this bundle_id was uploaded before: a bundle id names one bundle');
      }
      await audit.record(trx, ctx, {
        action: 'usage.bundle_upload',
        outcome: 'success',
        targetType: 'usage_bundle',
        targetId: p.bundleId,
        details: { ...about, replayed: true },
      });
      return { receipt: held.receipt, replayed: true };
    }

    const { outcomes, afterCommit } = await usage.recordInTransaction(trx, customerId, checked.valid, { lateBefore });
    const rejected = [...checked.rejected];
    let applied = 0;
    let duplicates = 0;
    const late: BundleEvent[] = [];
    outcomes.forEach((o, i) => {
      const e = checked.valid[i]!;
      if (o.conflict) rejected.push({ index: e.index, idempotencyKey: e.idempotencyKey, reason: 'idempotency_key: already used with a different event' });
      else if (!o.created) duplicates++;
      else {
        applied++;
        if (o.late) late.push(e);
      }
    });
    rejected.sort((a, b) => a.index - b.index);
    await trueUps.recordLate(
      trx,
      customerId,
      p.bundleId,
      late.map((e) => ({ metric: e.metric, quantity: e.quantity, occurredAt: e.occurredAt })),
    );

    const previousMismatch = p.seq > 1 && (await repo.previousMismatch(trx, customerId, p.fingerprint, p.seq - 1, p.previous));
    const missing = await repo.missingWith(trx, customerId, p.fingerprint, p.seq);
    const claims: UsageBundleReceipt = {
      iss: settings.issuer,
      sub: customerId,
      iat: sec(now()),
      jti: randomUUID(),
      bundle_id: p.bundleId,
      seq: p.seq,
      customer_id: customerId,
      fingerprint: p.fingerprint,
      bundle_digest: bundle.digest,
      events: p.events.length,
      applied,
      duplicates,
      rejected: rejected.map((r) => ({ idempotency_key: r.idempotencyKey, reason: r.reason })),
      late: late.length,
      missing_seq: missing,
      previous_mismatch: previousMismatch,
    };
    const receipt = await signer.signTyped({ ...claims }, RECEIPT_TYP);
    try {
      await repo.insert(trx, {
        customerId,
        bundleId: p.bundleId,
        fingerprint: p.fingerprint,
        seq: p.seq,
        previous: p.previous,
        digest: bundle.digest,
        instanceKeyThumbprint: bundle.kid,
        bundleCreatedAt: p.createdAt,
        events: p.events.length,
        applied,
        duplicates,
        rejected: rejected.length,
        late: late.length,
        previousMismatch,
        receipt,
        uploadedBy: input.uploadedBy,
      });
    } catch (err) {
      // The same bundle id from another fingerprint at the same moment (the lock is per instance).
      if (isUniqueViolation(err, 'usage_bundles_pkey')) {
        throw new AppError('BUNDLE_CONFLICT', 'Another usage bundle with this bundle_id was uploaded before: a bundle id names one bundle');
      }
      throw err;
    }
    if (missing.length > 0 || previousMismatch) {
      await events.emit(trx, {
        type: 'usage.bundle_gap',
        customerId,
        data: { ...about, missing_seq: missing, previous_mismatch: previousMismatch },
      });
    }
    await audit.record(trx, ctx, {
      action: 'usage.bundle_upload',
      outcome: 'success',
      targetType: 'usage_bundle',
      targetId: p.bundleId,
      details: {
        ...about,
        events: p.events.length,
        applied,
        duplicates,
        rejected: rejected.length,
        late: late.length,
        missing_seq: missing.length,
        previous_mismatch: previousMismatch,
      },
    });
    return { receipt, replayed: false, afterCommit };
  }

  /** A fresh license bound to the instance, as an offline activation's; when it cannot be issued, why. */
  async function freshLicense(ctx: ActorContext, customerId: string, fingerprint: string, key: InstanceKey) {
    try {
      const license = await licenses.issueOffline(ctx, customerId, { fingerprint, instanceKey: key, ttlSeconds: LICENSE_TTL_SECONDS });
      return { license, licenseError: null };
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      return { license: null, licenseError: { code: err.code, message: err.message } };
    }
  }

  return {
    async upload(ctx: ActorContext, input: UploadInput): Promise<UploadResult> {
      const { customerId } = input;
      const customer = await customers.assertActive(db, customerId);
      const bundle = parseBundle(input.text, settings.maxEvents);
      if (bundle.payload.customerId !== customerId) {
        throw new AppError(
          'BUNDLE_WRONG_CUSTOMER',
          input.uploadedBy === 'customer'
            ? 'This usage bundle is another customer’s (its customer_id): upload it with that customer’s key'
            : 'This usage bundle is another customer’s (its customer_id): upload it for the customer it names',
        );
      }
      const key = await instanceKeyOf(customerId, bundle);
      await verifySignature(bundle, key);
      const nowMs = now();
      const checked = checkEvents(bundle.payload.events, {
        metrics: settings.metrics,
        createdAt: bundle.payload.createdAt,
        customerCreatedAt: customer.createdAt,
        nowMs,
      });
      const lateBefore = await trueUps.lateCutoff(customerId, nowMs);

      let applied: Awaited<ReturnType<typeof apply>>;
      for (let attempt = 1; ; attempt++) {
        try {
          applied = await db.transaction((trx) => apply(trx, ctx, input, bundle, checked, lateBefore));
          break;
        } catch (err) {
          // Another writer of the same keys took its locks in another order: nothing was kept, try again.
          if ((err as { code?: string }).code !== DEADLOCK || attempt >= 3) throw err;
        }
      }
      applied.afterCommit?.();

      const { license, licenseError } = await freshLicense(ctx, customerId, bundle.payload.fingerprint, key);
      return { receipt: applied.receipt, claims: decodeJwt<UsageBundleReceipt>(applied.receipt), replayed: applied.replayed, license, licenseError };
    },

    /** Each of the customer's instances among `fingerprints` that sent bundles: its highest seq, last upload, missing seqs. One query. */
    summaries: (customerId: string, fingerprints: readonly string[]): Promise<Map<string, BundleSummary>> => repo.summaries(db, customerId, fingerprints),
  };
}

export type UsageBundlesService = ReturnType<typeof createUsageBundlesService>;
