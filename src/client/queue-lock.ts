import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { QueueLockedError } from './client-errors';

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

async function holder(file: string): Promise<number | null> {
  const text = await fsp.readFile(file, 'utf8').catch(() => '');
  const pid = Number.parseInt(text.trim(), 10);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
}

/**
 * One writer per queue directory: a lock file created exclusively, holding the writer's pid. A lock
 * left by a process that is gone (or unreadable: a crash while it was being written) is taken over.
 */
export async function acquireLock(file: string): Promise<QueueLock> {
  const key = path.resolve(file);
  if (heldHere.has(key)) throw new QueueLockedError(`${file} is held by another client in this process`, file, process.pid);
  for (let attempt = 0; ; attempt++) {
    try {
      const h = await fsp.open(file, 'wx', 0o600);
      try {
        await h.writeFile(`${process.pid}\n`);
        await h.sync();
      } finally {
        await h.close();
      }
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = await holder(file);
      if (pid === null && attempt < 3) {
        // Empty: maybe being written by its creator this instant; stale only once it has aged.
        const age = await fsp.stat(file).then(
          (st) => Date.now() - st.mtimeMs,
          () => Infinity,
        );
        if (age < 2_000) {
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
      }
      const stale = pid === null || pid === process.pid || !alive(pid);
      if (!stale || attempt >= 5) {
        throw new QueueLockedError(
          `${file} is held by process ${pid}; one writer per queue directory (delete the file only if that process is not a client of this queue)`,
          file,
          pid,
        );
      }
      // Taken over: a dead holder (or this process's own, left by a client that was never closed).
      await fsp.rm(file, { force: true });
    }
  }
  heldHere.add(key);
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      heldHere.delete(key);
      if ((await holder(file)) === process.pid) await fsp.rm(file, { force: true });
    },
  };
}
