import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { CompactSign } from 'jose';
import { readState, writeState, type BundleRecord, type BundleState } from './bundle-state';
import type { BundleEvent, BundleReceiptClaims, UsageBundlePayload } from './client-types';
import type { InstanceKey } from './instance-key';
import { readPrivate, syncDir, writeNewPrivate } from './private-fs';
import { ReceiptError } from './receipt-errors';
import { serial } from './serial';
import type { QueueEntry, UsageQueue } from './usage-queue';

export const BUNDLE_FORMAT = 'usage-bundle/1';
export const BUNDLE_TYP = 'usage-bundle+jws';
/** The service's USAGE_BUNDLE_MAX_EVENTS default. */
export const DEFAULT_BUNDLE_MAX_EVENTS = 100_000;
/** Below the service's USAGE_BUNDLE_MAX_BYTES default (20 MB), with room for the upload's JSON around it. */
export const DEFAULT_BUNDLE_MAX_BYTES = 16 * 1024 * 1024;

/** A bundle's digest: base64url(SHA-256(its JWS text without surrounding whitespace)). */
export const bundleDigest = (jws: string) => createHash('sha256').update(jws.trim(), 'utf8').digest('base64url');

export interface ExportOptions {
  customerId: string;
  fingerprint: string;
  /** At most this many events (the oldest); the rest go in the next bundle. Default 100,000 (the service's default limit). */
  maxEvents?: number;
  /** The file at most this large (bytes). Default 16 MiB (the service takes 20 MB by default). */
  maxBytes?: number;
}

export interface ExportSummary {
  file: string;
  bundleId: string;
  seq: number;
  previous: string | null;
  digest: string;
  createdAt: string;
  events: number;
  /** Queued events that did not fit (maxEvents, maxBytes): they go in the next bundle. */
  remaining: number;
}

export interface ReceiptEffects {
  bundle: BundleRecord;
  /** Events taken off the queue by this import (some may have been acknowledged online already). */
  acknowledged: number;
  /** Refused events moved to the dead letters by this import. */
  deadLettered: number;
}

const b64Length = (bytes: number) => Math.ceil((bytes * 4) / 3);
/** An Ed25519 signature (64 bytes) in base64url. */
const SIGNATURE_LENGTH = b64Length(64);

/**
 * As many of the oldest events as the limits allow (at least one, so that no event can hold the queue
 * back): the file is `header.payload.signature\n`, each part base64url, and the payload the skeleton
 * (the bundle's own fields, `events: []`) plus each event's JSON and a comma.
 */
function fitting(entries: QueueEntry[], o: { maxEvents: number; maxBytes: number; header: string; skeleton: string }): QueueEntry[] {
  const fixed = b64Length(Buffer.byteLength(o.header)) + 1 + 1 + SIGNATURE_LENGTH + 1;
  let payload = Buffer.byteLength(o.skeleton);
  let n = 0;
  for (const e of entries) {
    if (n >= o.maxEvents) break;
    const next = payload + Buffer.byteLength(JSON.stringify(e.event)) + (n > 0 ? 1 : 0);
    if (n > 0 && fixed + b64Length(next) > o.maxBytes) break;
    payload = next;
    n += 1;
  }
  return entries.slice(0, n);
}

function bundleEvent(e: QueueEntry): BundleEvent {
  const { occurred_at } = e.event;
  if (typeof occurred_at !== 'string') {
    // The queue stamps occurred_at as it takes an event: a line without one was not written by this client.
    throw new Error(`queued event ${e.event.idempotency_key} has no occurred_at: it cannot go in a usage bundle`);
  }
  return { ...e.event, occurred_at };
}

/** The lines of dead-letter.jsonl as idempotency keys (what is there already is not written again). */
async function deadLetterKeys(file: string): Promise<Set<string>> {
  const keys = new Set<string>();
  const text = ((await readPrivate(file)) ?? Buffer.alloc(0)).toString('utf8');
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const key = (JSON.parse(line) as { event?: { idempotency_key?: unknown } | null }).event?.idempotency_key;
      if (typeof key === 'string') keys.add(key);
    } catch {
      // a torn last line: not a dead letter
    }
  }
  return keys;
}

/** Removes `file` if it is a regular file (never through a link) and `onlyIf` accepts its content. */
async function removeFile(file: string, onlyIf?: (content: Buffer) => boolean): Promise<void> {
  const st = await fsp.lstat(file).catch(() => null);
  if (!st?.isFile()) return;
  if (onlyIf && !onlyIf(await fsp.readFile(file))) return;
  await fsp.rm(file, { force: true });
  await syncDir(path.dirname(file));
}

/**
 * The usage bundles of one queue folder: exports (signed with the instance key, numbered 1, 2, 3…,
 * each naming the digest of the one before) and the receipts that come back for them. The events
 * stay queued until a receipt acknowledges them; an export never changes the queue.
 *
 * Crash safety. An export records its intent (seq, bundle id, digest, file) in the state, writes the
 * file under a temporary name (fsynced), renames it into place, fsyncs the folder, and only then
 * records the seq as exported. A crash before that record leaves the intent: the next export or
 * import undoes it (removes the temporary file, and the file if it holds exactly that bundle) and
 * the seq is used again, so the service never sees a seq whose file was never complete, and the
 * instance never remembers a bundle it did not finish. An import applies its receipt's effects in
 * an order that can be repeated: dead letters (an event already there is not written again), the
 * acknowledgement (by queue position: what left already is skipped), the license, and last the
 * bundle marked imported; a crash anywhere before that mark and the same receipt imported again
 * finishes the job.
 */
export class UsageBundles {
  private readonly exclusive = serial();

  constructor(
    private readonly queue: UsageQueue,
    private readonly key: () => Promise<InstanceKey>,
  ) {}

  /** The state as it is (an unfinished export undone first). */
  state(): Promise<BundleState> {
    return this.exclusive(() => this.recovered());
  }

  /** Writes a bundle of what the queue holds to `file`. */
  export(file: string, o: ExportOptions): Promise<ExportSummary> {
    return this.exclusive(async () => {
      const state = await this.recovered();
      if ((state.customer_id !== null && state.customer_id !== o.customerId) || (state.fingerprint !== null && state.fingerprint !== o.fingerprint)) {
        throw new TypeError(
          `This queue's bundles are for customer ${state.customer_id}, instance ${state.fingerprint}: a queue folder is one instance's, ` +
            'its seqs one chain (use that customer id and fingerprint, or another queue folder)',
        );
      }
      const key = await this.key();
      const pending = await this.queue.snapshot();
      const seq = state.seq + 1;
      const header = { alg: 'EdDSA', typ: BUNDLE_TYP, kid: key.thumbprint };
      const skeleton: UsageBundlePayload = {
        format: BUNDLE_FORMAT,
        customer_id: o.customerId,
        fingerprint: o.fingerprint,
        bundle_id: randomUUID(),
        seq,
        previous: seq === 1 ? null : state.last_digest,
        created_at: new Date().toISOString(),
        events: [],
      };
      const taken = fitting(pending, {
        maxEvents: o.maxEvents ?? DEFAULT_BUNDLE_MAX_EVENTS,
        maxBytes: o.maxBytes ?? DEFAULT_BUNDLE_MAX_BYTES,
        header: JSON.stringify(header),
        skeleton: JSON.stringify(skeleton),
      });
      const payload: UsageBundlePayload = { ...skeleton, events: taken.map(bundleEvent) };
      const jws = await new CompactSign(Buffer.from(JSON.stringify(payload), 'utf8')).setProtectedHeader(header).sign(key.privateKey);
      const digest = bundleDigest(jws);
      const target = path.resolve(file);
      const tmp = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);

      await writeState(this.queue.dir, { ...state, exporting: { seq, bundle_id: payload.bundle_id, digest, file: target, tmp } });
      try {
        await writeNewPrivate(tmp, `${jws}\n`, 0o600);
        await fsp.rename(tmp, target);
        await syncDir(path.dirname(target));
      } catch (err) {
        // Nothing was exported: the intent goes (the next export takes the same seq).
        await fsp.rm(tmp, { force: true }).catch(() => undefined);
        await writeState(this.queue.dir, state).catch(() => undefined);
        throw err;
      }

      const last = taken[taken.length - 1];
      const record: BundleRecord = {
        bundle_id: payload.bundle_id,
        seq,
        digest,
        created_at: payload.created_at,
        events: taken.length,
        through: last ? { segment: last.segment, end: last.end } : null,
        imported_at: null,
        receipt_jti: null,
      };
      await writeState(this.queue.dir, {
        customer_id: o.customerId,
        fingerprint: o.fingerprint,
        seq,
        last_digest: digest,
        exporting: null,
        bundles: [...state.bundles, record],
      });
      return {
        file: target,
        bundleId: payload.bundle_id,
        seq,
        previous: payload.previous,
        digest,
        createdAt: payload.created_at,
        events: taken.length,
        remaining: pending.length - taken.length,
      };
    });
  }

  /**
   * Applies a verified receipt: checks it is for a bundle this instance exported, with that content,
   * not imported yet; dead-letters its refused events, acknowledges the bundle's events still queued
   * (`prepare` is told which, as for the flusher), runs `after` (the license), then marks it imported.
   */
  applyReceipt(
    claims: BundleReceiptClaims,
    prepare: (leaving: QueueEntry[], rejected: Set<string>) => Promise<(() => void) | undefined>,
    after: () => Promise<void>,
  ): Promise<ReceiptEffects> {
    return this.exclusive(async () => {
      const state = await this.recovered();
      const bundle = state.bundles.find((b) => b.bundle_id === claims.bundle_id);
      if (!bundle) throw new ReceiptError('UNKNOWN_BUNDLE', 'The receipt is for a bundle this instance did not export (or no longer remembers).');
      if (bundle.digest !== claims.bundle_digest || bundle.seq !== claims.seq) {
        throw new ReceiptError('DIGEST_MISMATCH', `The receipt is for bundle ${bundle.seq} but for another content than this instance exported.`);
      }
      if (bundle.imported_at !== null) {
        throw new ReceiptError('REPLAYED', `The receipt for bundle ${bundle.seq} was imported already (${bundle.imported_at}); nothing was changed.`);
      }

      let deadLettered = 0;
      let acknowledged = 0;
      if (bundle.through) {
        const through = bundle.through;
        const rejected = new Map(claims.rejected.map((r) => [r.idempotency_key, r.reason]));
        if (rejected.size > 0) {
          const already = await deadLetterKeys(this.queue.deadLetterFile);
          const ofBundle = (await this.queue.snapshot()).filter((e) => e.segment < through.segment || (e.segment === through.segment && e.end <= through.end));
          for (const e of ofBundle) {
            const reason = rejected.get(e.event.idempotency_key);
            if (reason === undefined || already.has(e.event.idempotency_key)) continue;
            await this.queue.deadLetter({
              event: e.event,
              status: null,
              code: 'BUNDLE_REJECTED',
              message: reason,
              requestId: null,
              details: { bundle_id: bundle.bundle_id, seq: bundle.seq, receipt: claims.jti },
            });
            deadLettered += 1;
          }
        }
        const keys = new Set(rejected.keys());
        acknowledged = await this.queue.acknowledgeThrough(through, (leaving) => prepare(leaving, keys));
      }
      await after();
      const imported = { ...bundle, imported_at: new Date().toISOString(), receipt_jti: claims.jti };
      await writeState(this.queue.dir, { ...state, bundles: state.bundles.map((b) => (b === bundle ? imported : b)) });
      return { bundle: imported, acknowledged, deadLettered };
    });
  }

  /** The state, with an export a crash interrupted undone (see the class comment). */
  private async recovered(): Promise<BundleState> {
    const state = await readState(this.queue.dir);
    const intent = state.exporting;
    if (!intent) return state;
    await removeFile(intent.tmp);
    await removeFile(intent.file, (content) => bundleDigest(content.toString('utf8')) === intent.digest);
    const undone = { ...state, exporting: null };
    await writeState(this.queue.dir, undone);
    return undone;
  }
}
