import path from 'node:path';
import { readPrivate, writeFileAtomic } from './private-fs';
import type { QueuePosition } from './usage-queue';

/** The export state, beside the queue. */
export const BUNDLE_STATE_FILE = 'usage-bundles.json';
const FILE_VERSION = 1;
/** Bundles remembered (a receipt for an older one is UNKNOWN_BUNDLE; its events were re-exported in later bundles anyway). */
export const BUNDLES_KEPT = 1000;

/** One exported bundle, as the instance remembers it. */
export interface BundleRecord {
  bundle_id: string;
  seq: number;
  digest: string;
  created_at: string;
  events: number;
  /** Where its last event's line ends in the queue: its receipt acknowledges up to there. null: it had no events. */
  through: QueuePosition | null;
  /** When its receipt was imported; null until then. */
  imported_at: string | null;
  receipt_jti: string | null;
}

/**
 * An export under way: recorded before its file is written, so that after a crash the half-done export
 * can be undone (its temporary file, and its file if it was renamed into place with exactly this
 * digest, are removed) and its seq used again. A seq is only ever recorded with its file complete.
 */
export interface ExportIntent {
  seq: number;
  bundle_id: string;
  digest: string;
  file: string;
  tmp: string;
}

export interface BundleState {
  /** Whose chain this is: set by the first export, the same for every later one. */
  customer_id: string | null;
  fingerprint: string | null;
  /** The last seq exported (0: none yet). */
  seq: number;
  /** The digest of the bundle with that seq (the next one's `previous`). */
  last_digest: string | null;
  exporting: ExportIntent | null;
  bundles: BundleRecord[];
}

export const emptyState = (): BundleState => ({ customer_id: null, fingerprint: null, seq: 0, last_digest: null, exporting: null, bundles: [] });

/** The state file is there but cannot be read: never reset silently (seqs would start again at 1, and receipts would match nothing). */
export class BundleStateError extends Error {
  override readonly name = 'BundleStateError';
  constructor(
    message: string,
    readonly file: string,
  ) {
    super(message);
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isText = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
const isTextOrNull = (v: unknown) => v === null || isText(v);
const isPosition = (v: unknown): v is QueuePosition => isObj(v) && isCount(v.segment) && isCount(v.end);

function isRecord(v: unknown): v is BundleRecord {
  return (
    isObj(v) &&
    isText(v.bundle_id) &&
    isCount(v.seq) &&
    isText(v.digest) &&
    isText(v.created_at) &&
    isCount(v.events) &&
    (v.through === null || isPosition(v.through)) &&
    isTextOrNull(v.imported_at) &&
    isTextOrNull(v.receipt_jti)
  );
}

function isIntent(v: unknown): v is ExportIntent {
  return isObj(v) && isCount(v.seq) && isText(v.bundle_id) && isText(v.digest) && isText(v.file) && isText(v.tmp);
}

export const stateFile = (dir: string) => path.join(dir, BUNDLE_STATE_FILE);

/** The state of the queue folder `dir` (empty when no bundle was ever exported). */
export async function readState(dir: string): Promise<BundleState> {
  const file = stateFile(dir);
  const content = await readPrivate(file);
  if (content === null) return emptyState();
  const corrupt = (why: string) =>
    new BundleStateError(
      `The usage bundles' state ${file} cannot be read (${why}). It holds this instance's bundle seqs: restore it from a backup ` +
        '(or, to start the chain again, ask the vendor first: the service would see the seqs start over).',
      file,
    );
  let d: unknown;
  try {
    d = JSON.parse(content.toString('utf8'));
  } catch {
    throw corrupt('not JSON');
  }
  if (!isObj(d) || d.version !== FILE_VERSION) throw corrupt('unknown version');
  if (!isTextOrNull(d.customer_id) || !isTextOrNull(d.fingerprint)) throw corrupt('identity');
  if (!isCount(d.seq) || !isTextOrNull(d.last_digest)) throw corrupt('seq');
  if (d.exporting !== null && !isIntent(d.exporting)) throw corrupt('exporting');
  if (!Array.isArray(d.bundles) || !d.bundles.every(isRecord)) throw corrupt('bundles');
  return {
    customer_id: d.customer_id,
    fingerprint: d.fingerprint,
    seq: d.seq,
    last_digest: d.last_digest,
    exporting: d.exporting,
    bundles: d.bundles,
  };
}

/** Written atomically (temporary file, fsync, rename, fsync of the folder): a crash leaves the old state or the new. */
export async function writeState(dir: string, state: BundleState): Promise<void> {
  const kept = { ...state, bundles: state.bundles.slice(-BUNDLES_KEPT) };
  await writeFileAtomic(stateFile(dir), JSON.stringify({ version: FILE_VERSION, ...kept }) + '\n', 0o600, 'usage queue');
}
