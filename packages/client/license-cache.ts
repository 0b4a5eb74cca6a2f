import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { UnsafePathError } from './client-errors';
import { LicenseError } from './license-errors';
import { privateDirCheck, readPrivate, writeFileAtomic } from './private-fs';
import { createLicenseVerifier, trustAnchorFor, type LicenseVerifier, type VerifiedLicense, type VerifyLicenseOptions } from './license-verifier';

/**
 * The file's content: `{"version":1,"token":"<compact JWS>","savedAt":"<ISO time>","requestedAt":<ms>}`,
 * mode 0600 (`requestedAt`: when this instance asked for the license, when it said so).
 */
const FILE_VERSION = 1;

export interface LicenseCacheOptions {
  /** Where the last good license is kept (not the mark file). */
  path: string;
  /** How licenses are verified; `acceptExpired` is set by the cache where it applies. */
  verify: Omit<VerifyLicenseOptions, 'acceptExpired'>;
}

/**
 * The last license this instance verified, kept on disk so the instance keeps its entitlements
 * while the server is out of reach. Nothing in the file is trusted: at load the token is verified
 * again (signature, key, exp, the mark: the kept license is normally the newest accepted, which is
 * not a replay). Deleting the file is always safe: the instance then has no offline license until
 * its next fetch. The mark lives in the store, not here. The folder must be private to this user and
 * the file is never read or written through a symbolic link (UnsafePathError: the folder is checked
 * as the cache is made, reported by its first use).
 */
export class LicenseCache {
  private readonly strict: LicenseVerifier;
  private readonly lenient: LicenseVerifier;
  private last: VerifiedLicense | null = null;
  private lastRequestedAt: number | null = null;
  private readonly folder: () => Promise<void>;

  constructor(private readonly options: LicenseCacheOptions) {
    this.folder = privateDirCheck(path.dirname(options.path), 'license');
    const v = options.verify;
    // One trust anchor for both verifiers, so a key set is fetched once for the two.
    const keys = v.keys ?? trustAnchorFor(v);
    this.strict = createLicenseVerifier({ ...v, keys });
    this.lenient = createLicenseVerifier({ ...v, keys, acceptExpired: true });
  }

  /** The license accepted or loaded last in this process. */
  get current(): VerifiedLicense | null {
    return this.last;
  }

  /**
   * When this instance asked for the current license (ms, this clock), as given to accept(); null when
   * not given. Everything the service acknowledged before it is in the license's usage figures.
   */
  get requestedAt(): number | null {
    return this.lastRequestedAt;
  }

  /**
   * Verifies a license just fetched from the server (an expired one is refused: EXPIRED) and, once it
   * is accepted, keeps it as the last good license.
   */
  async accept(token: string, o: { requestedAt?: number } = {}): Promise<VerifiedLicense> {
    await this.folder();
    const verified = await this.strict.verify(token);
    const requestedAt = o.requestedAt !== undefined && Number.isSafeInteger(o.requestedAt) ? o.requestedAt : null;
    const content =
      JSON.stringify({ version: FILE_VERSION, token, savedAt: new Date().toISOString(), ...(requestedAt !== null ? { requestedAt } : {}) }) + '\n';
    await writeFileAtomic(this.options.path, content, 0o600, 'license');
    this.last = verified;
    this.lastRequestedAt = requestedAt;
    return verified;
  }

  /**
   * The kept license, verified again; null when none is kept. A kept license past its exp answers
   * decision `expired` (expiredBy `license`) rather than an error, so the instance degrades.
   */
  async load(): Promise<VerifiedLicense | null> {
    await this.folder();
    let content: Buffer | null;
    try {
      content = await readPrivate(this.options.path);
    } catch (err) {
      if (err instanceof UnsafePathError) throw err;
      throw this.corrupt((err as NodeJS.ErrnoException).code ?? 'read failed', err);
    }
    if (content === null) return null;
    let token: unknown;
    let requestedAt: unknown;
    try {
      const data = JSON.parse(content.toString('utf8')) as { version?: unknown; token?: unknown; requestedAt?: unknown };
      if (data.version !== FILE_VERSION) throw new Error('unknown version');
      token = data.token;
      requestedAt = data.requestedAt;
    } catch (err) {
      throw this.corrupt('not a license cache file', err);
    }
    if (typeof token !== 'string') throw this.corrupt('no token');
    const verified = await this.lenient.verify(token);
    this.last = verified;
    // Not signed: it only moves where this instance's own reports start counting, within the license's life.
    this.lastRequestedAt = typeof requestedAt === 'number' && Number.isSafeInteger(requestedAt) ? requestedAt : null;
    return verified;
  }

  /** Forgets the kept license (the mark stays). */
  async clear(): Promise<void> {
    await fsp.rm(this.options.path, { force: true });
    this.last = null;
  }

  private corrupt(why: string, cause?: unknown): LicenseError<'STORE_CORRUPT'> {
    return new LicenseError('STORE_CORRUPT', `The license cache file ${this.options.path} cannot be read (${why}); deleting it is safe.`, { cause });
  }
}
