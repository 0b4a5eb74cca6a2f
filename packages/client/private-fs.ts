import { randomBytes } from 'node:crypto';
import { constants, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { UnsafePathError } from './client-errors';

/**
 * The SDK's folders (the usage queue, the kept license) and the files in them, safe from other local
 * users: a folder must be owned by this process's user and not writable by group or others, and must
 * not sit in a folder where anyone may rename entries (world-writable without the sticky bit); files
 * are opened without following a symbolic link, and a file with another name (a hard link) or another
 * owner is refused. On Windows (no uid, no O_NOFOLLOW) the checks that have no meaning there are skipped.
 */
const NOFOLLOW = constants.O_NOFOLLOW ?? 0;
// A FIFO planted in place of a file must not block an open forever.
const NONBLOCK = constants.O_NONBLOCK ?? 0;
export const OPEN = {
  read: constants.O_RDONLY,
  /** Appending, created if missing. */
  append: constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT,
  /** Reading and appending, created if missing. */
  readAppend: constants.O_RDWR | constants.O_APPEND | constants.O_CREAT,
  /** Reading and writing in place, created if missing. */
  readWrite: constants.O_RDWR | constants.O_CREAT,
  /** A new file: fails with EEXIST when anything (a file, a symbolic link) has the name. */
  create: constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
  createAppend: constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | constants.O_EXCL,
} as const;

const uid = () => (typeof process.getuid === 'function' ? process.getuid() : null);

/** Creates the folder (0700) if missing, then refuses it unless only this user can change what is in it. */
export async function ensurePrivateDir(dir: string, what: string): Promise<void> {
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  const me = uid();
  if (me === null) return;
  const abs = path.resolve(dir);
  const link = await fsp.lstat(abs);
  // A symbolic link is followed only if this user made it (one planted by another user is refused).
  if (link.isSymbolicLink() && link.uid !== me) throw new UnsafePathError(`The ${what} folder ${abs} is a symbolic link another user owns`, abs, 'symlink');
  const st = await fsp.stat(abs);
  if (!st.isDirectory()) throw new UnsafePathError(`The ${what} folder ${abs} is not a directory`, abs, 'not-a-directory');
  if (st.uid !== me) throw new UnsafePathError(`The ${what} folder ${abs} belongs to uid ${st.uid}, not to this process's user (uid ${me})`, abs, 'owner');
  if ((st.mode & 0o022) !== 0) {
    throw new UnsafePathError(
      `The ${what} folder ${abs} is writable by group or others (mode ${(st.mode & 0o777).toString(8)}): another user could plant files there; make it 0700`,
      abs,
      'mode',
    );
  }
  const real = await fsp.realpath(abs);
  for (let p = path.dirname(real); ; p = path.dirname(p)) {
    const s = await fsp.stat(p);
    if ((s.mode & 0o002) !== 0 && (s.mode & 0o1000) === 0) {
      throw new UnsafePathError(`The ${what} folder ${abs} is inside ${p}, which anyone may rename entries in (world-writable, no sticky bit)`, abs, 'parent');
    }
    if (p === path.dirname(p)) break;
  }
}

/**
 * Opens a file without following a symbolic link at its name (ELOOP becomes UnsafePathError), and
 * refuses anything but a regular file of this user with one name.
 */
export async function openPrivate(file: string, flags: number, mode = 0o600, o: { hardLinks?: boolean } = {}): Promise<FileHandle> {
  let h: FileHandle;
  try {
    h = await fsp.open(file, flags | NOFOLLOW | NONBLOCK, mode);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // Linux answers ELOOP for O_NOFOLLOW on a link; FreeBSD and macOS EMLINK.
    if (code === 'ELOOP' || (code === 'EMLINK' && NOFOLLOW !== 0)) throw new UnsafePathError(`${file} is a symbolic link: refused`, file, 'symlink');
    throw err;
  }
  try {
    const st = await h.stat();
    const me = uid();
    if (!st.isFile()) throw new UnsafePathError(`${file} is not a regular file: refused`, file, 'not-a-file');
    if (me !== null && st.uid !== me) throw new UnsafePathError(`${file} belongs to uid ${st.uid}, not to this process's user: refused`, file, 'owner');
    if (st.nlink > 1 && !o.hardLinks) throw new UnsafePathError(`${file} has ${st.nlink} names (hard links): refused`, file, 'hard-link');
  } catch (err) {
    await h.close();
    throw err;
  }
  return h;
}

/** The whole file, read through openPrivate; null when it does not exist. */
export async function readPrivate(file: string, o: { hardLinks?: boolean } = {}): Promise<Buffer | null> {
  let h: FileHandle;
  try {
    h = await openPrivate(file, OPEN.read, 0o600, o);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    return await h.readFile();
  } finally {
    await h.close();
  }
}

/**
 * A folder check started as an object is built (a misconfigured folder is known at once, without
 * waiting for a first write) and reported by its first use; each later use checks again, so a folder
 * made private after a refusal is taken.
 */
export function privateDirCheck(dir: string, what: string): () => Promise<void> {
  let early: Promise<void> | null = ensurePrivateDir(dir, what);
  early.catch(() => undefined);
  return () => {
    const check = early ?? ensurePrivateDir(dir, what);
    early = null;
    return check;
  };
}

/**
 * A new file with `content`, fsynced: created exclusively (EEXIST when anything, a symbolic link
 * included, has the name), removed again if writing fails.
 */
export async function writeNewPrivate(file: string, content: string, mode = 0o600): Promise<void> {
  const h = await openPrivate(file, OPEN.create, mode);
  try {
    try {
      await h.writeFile(content, 'utf8');
      await h.sync();
    } finally {
      await h.close();
    }
  } catch (err) {
    await fsp.rm(file, { force: true });
    throw err;
  }
}

/**
 * Writes `content` to `file` so that a reader sees the old content or the new, never a mix: a
 * temporary file in the same folder (writeNewPrivate), renamed over the target (a rename replaces a
 * link planted at the name, it never writes through it), then the folder fsynced so the rename itself
 * survives a power cut. The folder must be private to this user (UnsafePathError otherwise; `what`
 * names it); whatever fails, no temporary file is left behind.
 */
export async function writeFileAtomic(file: string, content: string, mode: number, what: string): Promise<void> {
  const dir = path.dirname(file);
  await ensurePrivateDir(dir, what);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  await writeNewPrivate(tmp, content, mode);
  try {
    await fsp.rename(tmp, file);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  await syncDir(dir);
}

/** fsyncs a folder so a create, rename or unlink in it survives a power cut (not possible on Windows). */
export async function syncDir(dir: string): Promise<void> {
  const h = await fsp.open(dir, 'r').catch(() => null);
  if (h) {
    await h.sync().catch(() => undefined);
    await h.close();
  }
}

export const isDiskFull = (err: unknown) => {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
};
