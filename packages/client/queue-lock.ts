import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { QueueLockedError } from './client-errors';
import { readPrivate, writeNewPrivate } from './private-fs';

export interface QueueLock {
  release(): Promise<void>;
}

/** Directories locked by a client of this process (a second client on one of them is refused). */
const heldHere = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists, under another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid in a lock file (null: unreadable), or 'gone' when there is no such file. */
async function holder(file: string): Promise<number | null | 'gone'> {
  // A lock has two names for a moment: the pid file it was made as is linked to `lock`, then removed.
  const content = await readPrivate(file, { hardLinks: true });
  if (content === null) return 'gone';
  const pid = Number.parseInt(content.toString('utf8').trim(), 10);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
}

/**
 * A lock (or steal guard) nobody holds: unreadable, or its process is gone. This process's own pid is
 * stale too: the directory is reserved in heldHere before any attempt, so no other client here made
 * it; it was left by an earlier process that had the same pid (pid 1 in a container, say).
 */
const stale = (pid: number | null) => pid === null || pid === process.pid || !alive(pid);

/** A file holding this process's pid, written and fsynced under a unique name, to be linked into place. */
async function pidFile(file: string): Promise<string> {
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  await writeNewPrivate(tmp, `${process.pid}\n`);
  return tmp;
}

/** link() is atomic and never replaces: true when `name` now is our file, false when something had the name. */
async function linkNew(tmp: string, name: string): Promise<boolean> {
  try {
    await fsp.link(tmp, name);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

/**
 * One writer per queue directory. The lock file is made complete (the pid written and fsynced) under
 * a unique name and then linked to `lock`: link() fails when the name exists, so exactly one of any
 * number of starting processes gets it, and no reader ever sees it half-written.
 *
 * A lock whose process is gone is stolen under a steal guard (`lock.steal`, taken the same way): only
 * its holder may remove the dead lock, and it checks again, under the guard, that the lock it removes
 * is still the dead one; so of many processes finding the same dead lock exactly one replaces it, and
 * the others then find a live holder. A guard whose holder died (a crash within those few
 * milliseconds) is removed by renaming it to a unique name first and putting it back if it turns out
 * to be a live one (see removeIfStale).
 */
export async function acquireLock(file: string): Promise<QueueLock> {
  const key = path.resolve(file);
  if (heldHere.has(key)) throw new QueueLockedError(`${file} is held by another client in this process`, file, process.pid);
  heldHere.add(key);
  const guard = `${file}.steal`;
  let tmp: string | null = null;
  try {
    tmp = await pidFile(file);
    for (let attempt = 0; ; attempt++) {
      if (await linkNew(tmp, file)) break;
      const pid = await holder(file);
      if (pid === 'gone') continue;
      if (!stale(pid) || attempt >= 50) {
        throw new QueueLockedError(
          `${file} is held by process ${pid}; one writer per queue directory (delete the file only if that process is not a client of this queue)`,
          file,
          typeof pid === 'number' ? pid : null,
        );
      }
      if (!(await linkNew(tmp, guard))) {
        await removeIfStale(guard);
        await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
        continue;
      }
      try {
        // Under the guard nobody else removes the lock: the one found dead now is the one removed.
        await removeIfStale(file);
      } finally {
        await fsp.rm(guard, { force: true });
      }
    }
  } catch (err) {
    heldHere.delete(key);
    throw err;
  } finally {
    if (tmp) await fsp.rm(tmp, { force: true });
  }
  await removeLeftovers(file);
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      heldHere.delete(key);
      if ((await holder(file).catch(() => null)) === process.pid) await fsp.rm(file, { force: true });
    },
  };
}

/**
 * Removes a lock or guard whose holder is gone: renamed to a unique name first, and put back if what
 * was moved turns out to be a live holder's (it was replaced after it was read).
 */
async function removeIfStale(name: string): Promise<void> {
  const pid = await holder(name);
  if (pid === 'gone' || !stale(pid)) return;
  const aside = `${name}.${process.pid}.${randomBytes(6).toString('hex')}.dead`;
  try {
    await fsp.rename(name, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const moved = await holder(aside);
  if (moved !== 'gone' && !stale(moved)) await linkNew(aside, name);
  await fsp.rm(aside, { force: true });
}

/** Pid files and set-aside locks of processes that died while taking the lock (removed by its new owner). */
async function removeLeftovers(file: string): Promise<void> {
  const base = path.basename(file).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const leftover = new RegExp(`^${base}(?:\\.steal)?\\.(\\d+)\\.[0-9a-f]{12}\\.(?:tmp|dead)$`);
  for (const name of await fsp.readdir(path.dirname(file)).catch(() => [])) {
    const pid = Number(leftover.exec(name)?.[1] ?? 0);
    if (pid > 0 && pid !== process.pid && !alive(pid)) await fsp.rm(path.join(path.dirname(file), name), { force: true });
  }
}
