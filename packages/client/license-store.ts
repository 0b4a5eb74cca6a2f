import path from 'node:path';
import { UnsafePathError } from './client-errors';
import { LicenseError } from './license-errors';
import { privateDirCheck, readPrivate, writeFileAtomic } from './private-fs';
import { serial } from './serial';

/**
 * The newest license this instance has accepted: its issue time (seconds) and id; and the newest
 * `exp` it has seen pass (a license of its own that expired): the clock never goes back before either.
 */
export interface LicenseMark {
  iat: number;
  jti: string;
  expired?: number;
}

/**
 * Where the monotonic mark lives. `advance` must never move the mark backwards: given a mark older
 * than the one held, it keeps the one held (two verifications may finish in any order).
 * `read` answers null when no license was ever accepted, and throws STORE_CORRUPT rather than
 * answering null for content it cannot read.
 */
export interface LicenseStore {
  read(): Promise<LicenseMark | null>;
  advance(mark: LicenseMark): Promise<void>;
}

/**
 * The clock rule licenses and usage receipts share: why this clock (`now`, seconds) is wound back
 * against the mark (earlier than the newest license accepted, or than the end of one seen expire),
 * or null when it is not.
 */
export function clockWoundBack(mark: LicenseMark | null, now: number, toleranceSeconds: number): string | null {
  if (mark && now < mark.iat - toleranceSeconds) return 'This clock is earlier than the newest license accepted: it was wound back.';
  if (mark?.expired !== undefined && now < mark.expired) {
    return 'This clock is earlier than the end of a license this instance has already seen expire: it was wound back.';
  }
  return null;
}

/** The mark after `next`, or null when it changes nothing: iat/jti move only forwards, `expired` only up. */
function merged(held: LicenseMark | null, next: LicenseMark): LicenseMark | null {
  const newer = held === null || next.iat > held.iat || (next.iat === held.iat && next.jti !== held.jti);
  const base = newer || held === null ? { iat: next.iat, jti: next.jti } : { iat: held.iat, jti: held.jti };
  const expired = Math.max(held?.expired ?? -1, next.expired ?? -1);
  if (!newer && expired === (held?.expired ?? -1)) return null;
  return expired >= 0 ? { ...base, expired } : base;
}

export function memoryLicenseStore(initial: LicenseMark | null = null): LicenseStore {
  let mark = initial ? { ...initial } : null;
  return {
    read: () => Promise.resolve(mark ? { ...mark } : null),
    advance(next) {
      mark = merged(mark, next) ?? mark;
      return Promise.resolve();
    },
  };
}

/** The file's content: `{"version":1,"iat":<seconds>,"jti":"<license id>","expired":<seconds, optional>,"updatedAt":"<ISO time>"}`. */
const FILE_VERSION = 1;

export interface FileLicenseStore extends LicenseStore {
  readonly path: string;
}

function corrupt(file: string, why: string, cause?: unknown): LicenseError<'STORE_CORRUPT'> {
  return new LicenseError(
    'STORE_CORRUPT',
    `The license mark file ${file} cannot be read (${why}). No license is accepted until an operator resets it: ` +
      'stop the instance, delete the file, start again (see docs/LICENSE-VERIFICATION.md).',
    { cause },
  );
}

/**
 * The mark in a small JSON file (no secret in it). A missing file means "no license accepted yet";
 * anything else unreadable is STORE_CORRUPT, never a silent reset: resetting the mark is what a
 * rollback attack wants, so it takes an operator. The folder must be private to this user and the
 * file is never read or written through a symbolic link (UnsafePathError: the folder is checked as the
 * store is made, reported by its first use).
 */
export function fileLicenseStore(file: string): FileLicenseStore {
  // One at a time per store, so a read-compare-write in this process is never interleaved.
  const run = serial();
  const folder = privateDirCheck(path.dirname(file), 'license');

  async function read(): Promise<LicenseMark | null> {
    await folder();
    let content: Buffer | null;
    try {
      content = await readPrivate(file);
    } catch (err) {
      if (err instanceof UnsafePathError) throw err;
      throw corrupt(file, (err as NodeJS.ErrnoException).code ?? 'read failed', err);
    }
    if (content === null) return null;
    let data: unknown;
    try {
      data = JSON.parse(content.toString('utf8'));
    } catch (err) {
      throw corrupt(file, 'not JSON', err);
    }
    if (typeof data !== 'object' || data === null) throw corrupt(file, 'not an object');
    const d = data as Record<string, unknown>;
    if (d.version !== FILE_VERSION) throw corrupt(file, `unknown version`);
    if (typeof d.iat !== 'number' || !Number.isSafeInteger(d.iat) || d.iat < 0) throw corrupt(file, 'iat');
    if (typeof d.jti !== 'string' || d.jti.length === 0) throw corrupt(file, 'jti');
    if (d.expired !== undefined && (typeof d.expired !== 'number' || !Number.isSafeInteger(d.expired) || d.expired < 0)) throw corrupt(file, 'expired');
    return { iat: d.iat, jti: d.jti, ...(d.expired !== undefined ? { expired: d.expired } : {}) };
  }

  return {
    path: file,
    read: () => run(read),
    advance: (next) =>
      run(async () => {
        const mark = merged(await read(), next);
        if (!mark) return;
        const content = JSON.stringify({ version: FILE_VERSION, ...mark, updatedAt: new Date().toISOString() }) + '\n';
        await writeFileAtomic(file, content, 0o600, 'license');
      }),
  };
}
