import { createPrivateKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { calculateJwkThumbprint } from 'jose';
import { UnsafePathError } from './client-errors';
import { ensurePrivateDir, OPEN, openPrivate, syncDir, writeNewPrivate } from './private-fs';

/** The file beside the queue: `{"version":1,"kty":"OKP","crv":"Ed25519","x":"…","d":"…","created_at":"…"}`, mode 0600. */
export const INSTANCE_KEY_FILE = 'instance-key.json';
const FILE_VERSION = 1;
const B64_32 = /^[A-Za-z0-9_-]{43}$/;

/** The instance's public key as the service takes it (`instance_key`): never the private part. */
export interface InstanceKeyJwk {
  kty: 'OKP';
  crv: 'Ed25519';
  x: string;
}

export interface InstanceKey {
  publicJwk: InstanceKeyJwk;
  /** RFC 7638 thumbprint of publicJwk (SHA-256, base64url): the `kid` of its bundles, the activation's `instance_key_thumbprint`. */
  thumbprint: string;
  privateKey: KeyObject;
  file: string;
}

/** The instance key file is there but is not one this client writes: never replaced silently (the instance would lose its identity). */
export class InstanceKeyError extends Error {
  override readonly name = 'InstanceKeyError';
  constructor(
    message: string,
    readonly file: string,
  ) {
    super(message);
  }
}

const TMP = /^\.instance-key\.json\.(\d+)\.[0-9a-f]{12}\.tmp$/;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Temporary files of creators that died between linking the key into place and removing their name for it. */
async function removeLeftovers(dir: string): Promise<void> {
  for (const name of await fsp.readdir(dir).catch(() => [])) {
    const pid = Number(TMP.exec(name)?.[1] ?? 0);
    if (pid > 0 && pid !== process.pid && !alive(pid)) await fsp.rm(path.join(dir, name), { force: true });
  }
}

async function parse(file: string, content: Buffer): Promise<InstanceKey> {
  const bad = (why: string) =>
    new InstanceKeyError(
      `The instance key file ${file} is not one this client writes (${why}). It is this instance's identity for usage bundles: ` +
        'restore it from a backup rather than deleting it (a new key needs a new activation by the vendor).',
      file,
    );
  let data: Record<string, unknown>;
  try {
    data = JSON.parse(content.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw bad('not JSON');
  }
  if (typeof data !== 'object' || data === null || data.version !== FILE_VERSION) throw bad('unknown version');
  if (
    data.kty !== 'OKP' ||
    data.crv !== 'Ed25519' ||
    typeof data.x !== 'string' ||
    !B64_32.test(data.x) ||
    typeof data.d !== 'string' ||
    !B64_32.test(data.d)
  ) {
    throw bad('not an Ed25519 key pair');
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', x: data.x, d: data.d }, format: 'jwk' });
  } catch {
    throw bad('not an Ed25519 key pair');
  }
  // The public half must be the private key's own: a file whose x was edited would sign bundles nobody can verify.
  const derived = (privateKey.export({ format: 'jwk' }) as { x?: string }).x;
  if (derived !== data.x) throw bad('its public key is not its private key’s');
  const publicJwk: InstanceKeyJwk = { kty: 'OKP', crv: 'Ed25519', x: data.x };
  return { publicJwk, thumbprint: await calculateJwkThumbprint(publicJwk, 'sha256'), privateKey, file };
}

/** The file through openPrivate (no symbolic link, this user's, one name), refused when group or others may read or change it; null when missing. */
async function readKeyFile(file: string): Promise<Buffer | null> {
  let h: FileHandle;
  try {
    h = await openPrivate(file, OPEN.read);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    const mode = (await h.stat()).mode;
    if ((mode & 0o077) !== 0 && process.platform !== 'win32') {
      throw new UnsafePathError(
        `${file} (the instance's private key) can be read or changed by group or others (mode ${(mode & 0o777).toString(8)}): refused; make it 0600`,
        file,
        'mode',
      );
    }
    return await h.readFile();
  } finally {
    await h.close();
  }
}

/** The key file, waiting out another process's creation of it. */
async function read(file: string): Promise<Buffer | null> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await readKeyFile(file);
    } catch (err) {
      // A creator links its complete file into place, then removes its temporary name: for that moment
      // the key has two names. A creator that died there left the other name: removed once its process is gone.
      if (!(err instanceof UnsafePathError) || err.reason !== 'hard-link' || attempt >= 50) throw err;
      await removeLeftovers(path.dirname(file));
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/**
 * The instance's Ed25519 key pair, in `instance-key.json` in `dir` (the queue folder, private to this
 * user): read, or made once. The new key is written complete (0600, fsynced) under a unique name and
 * linked to its name: link() never replaces, so of two processes starting at once exactly one key is
 * made and both use it, and no reader sees half a file. A file that cannot be read as a key is
 * InstanceKeyError, never replaced.
 */
export async function loadOrCreateInstanceKey(dir: string): Promise<InstanceKey> {
  await ensurePrivateDir(dir, 'usage queue');
  const file = path.join(dir, INSTANCE_KEY_FILE);
  const existing = await read(file);
  if (existing) return parse(file, existing);

  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' }) as { x: string; d: string };
  const content = JSON.stringify({ version: FILE_VERSION, kty: 'OKP', crv: 'Ed25519', x: jwk.x, d: jwk.d, created_at: new Date().toISOString() }) + '\n';
  const tmp = path.join(dir, `.${INSTANCE_KEY_FILE}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  await writeNewPrivate(tmp, content, 0o600);
  try {
    await fsp.link(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    // Another process made it first: that key is the instance's.
  } finally {
    await fsp.rm(tmp, { force: true });
  }
  await syncDir(dir);
  const made = await read(file);
  if (!made) throw new InstanceKeyError(`The instance key file ${file} disappeared as it was made`, file);
  return parse(file, made);
}
