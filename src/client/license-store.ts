import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { LicenseError } from './license-errors';
import { ensurePrivateDir, openPrivate, OPEN, syncDir } from './private-fs';

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

/** The mark after `next`, or null when it changes nothing: iat/jti move only forwards, `expired` only up. */
function merged(held: LicenseMark | null, next: LicenseMark): LicenseMark | null {
  const newer = held === null || next.iat > held.iat || (next.iat === held.iat && next.jti !== held.jti);
  const base = newer || held === null ? { iat: next.iat, jti: next.jti } : { iat: held.iat, jti: held.jti };
  const expired = Math.max(held?.expired ?? -1, next.expired ?? -1);
  if (!newer && expired === (held?.expired ?? -1)) return null;
  return expired >= 0 ? { ...base, expired } : base;
}

/** One at a time per store, so a read-compare-write in this process is never interleaved. */
function serial() {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(work: () => Promise<T>): Promise<T> => {
    const run = tail.then(work, work);
    tail = run.catch(() => undefined);
    return run;
  };
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
 * Writes `content` to `file` so that a reader sees the old content or the new, never a mix:
 * a temporary file in the same folder (created exclusively, never through a symbolic link), fsync,
 * rename over the target (a rename replaces a link planted at the name, it never writes through it),
 * then fsync the folder so the rename itself survives a power cut. The folder must be private to this
 * user (UnsafePathError otherwise); whatever fails, no temporary file is left behind.
 */
export async function writeFileAtomic(file: string, content: string, mode: number): Promise<void> {
  const dir = path.dirname(file);
  await ensurePrivateDir(dir, 'license');
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await openPrivate(tmp, OPEN.create, mode);
  try {
    try {
      await handle.writeFile(content, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fsp.rename(tmp, file);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  await syncDir(dir);
}

/**
 * The mark in a small JSON file (no secret in it). A missing file means "no license accepted yet";
 * anything else unreadable is STORE_CORRUPT, never a silent reset: resetting the mark is what a
 * rollback attack wants, so it takes an operator.
 */
export function fileLicenseStore(file: string): FileLicenseStore {
  const run = serial();

  async function read(): Promise<LicenseMark | null> {
    let text: string;
    try {
      text = await fsp.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw corrupt(file, (err as NodeJS.ErrnoException).code ?? 'read failed', err);
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
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
        await writeFileAtomic(file, content, 0o600);
      }),
  };
}
