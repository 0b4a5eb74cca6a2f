import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileLicenseStore, LicenseCache, verifyLicense, type LicenseCacheOptions } from '../../packages/client';
import { claims, CUSTOMER, ISSUER, jwksOf, makeKey, NOW_MS, sign, T0, type TestKey } from './license-fixtures';

let k1: TestKey;
let dir: string;
let markFile: string;
let cacheFile: string;

beforeAll(async () => {
  k1 = await makeKey('k1');
});
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'license-cache-'));
  markFile = path.join(dir, 'license-mark.json');
  cacheFile = path.join(dir, 'license.json');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function verifyOptions(now = NOW_MS): LicenseCacheOptions['verify'] {
  // A new store on each call, as after a restart: only the file carries the mark.
  return { trustedKeys: jwksOf(k1), issuer: ISSUER, customerId: CUSTOMER, fingerprint: 'fp-1', now, store: fileLicenseStore(markFile) };
}

describe('the file store across a restart', () => {
  test('when the instance restarts, then an older license than the one accepted before is still REPLAYED', async () => {
    const older = await sign(k1, claims({ iat: T0 - 3600 }));
    await verifyLicense(await sign(k1, claims({ iat: T0 - 60 })), verifyOptions());
    await expect(verifyLicense(older, verifyOptions())).rejects.toMatchObject({ code: 'REPLAYED' });
    await expect(verifyLicense(await sign(k1, claims()), verifyOptions(NOW_MS - 3 * 86400 * 1000))).rejects.toMatchObject({ code: 'CLOCK_ROLLED_BACK' });
  });

  test('when the mark file is corrupt, then no license is accepted (STORE_CORRUPT) and the file is not reset', async () => {
    fs.writeFileSync(markFile, 'garbage');
    await expect(verifyLicense(await sign(k1, claims()), verifyOptions())).rejects.toMatchObject({ code: 'STORE_CORRUPT' });
    expect(fs.readFileSync(markFile, 'utf8')).toBe('garbage');
    // The documented reset: the operator deletes the file.
    fs.rmSync(markFile);
    await expect(verifyLicense(await sign(k1, claims()), verifyOptions())).resolves.toMatchObject({ decision: 'full' });
  });
});

describe('LicenseCache', () => {
  test('when a license is accepted, then it is kept (0600) and reloads after a restart; equal to the mark is not a replay', async () => {
    const token = await sign(k1, claims({ instance: 'fp-1' }));
    const accepted = await new LicenseCache({ path: cacheFile, verify: verifyOptions() }).accept(token);
    expect(fs.statSync(cacheFile).mode & 0o777).toBe(0o600);

    const cache = new LicenseCache({ path: cacheFile, verify: verifyOptions(NOW_MS + 3600_000) });
    const loaded = await cache.load();
    expect(loaded).toMatchObject({ decision: 'full', expiredBy: null });
    expect(loaded?.claims).toEqual(accepted.claims);
    expect(cache.current).toBe(loaded);
  });

  test('when nothing is kept, then load answers null', async () => {
    await expect(new LicenseCache({ path: cacheFile, verify: verifyOptions() }).load()).resolves.toBeNull();
  });

  test('when the kept license has lapsed (offline too long), then it loads with decision expired, by the license', async () => {
    const token = await sign(k1, claims());
    await new LicenseCache({ path: cacheFile, verify: verifyOptions() }).accept(token);
    const later = NOW_MS + 8 * 86400 * 1000;
    await expect(new LicenseCache({ path: cacheFile, verify: verifyOptions(later) }).load()).resolves.toMatchObject({
      decision: 'expired',
      expiredBy: 'license',
    });
    // A lapsed license fetched fresh is refused, though: accept() is for licenses just issued.
    await expect(new LicenseCache({ path: cacheFile, verify: verifyOptions(later) }).accept(token)).rejects.toMatchObject({ code: 'EXPIRED' });
  });

  test('when the clock is wound back after the kept license expired, then it loads as CLOCK_ROLLED_BACK, never full again, also after a restart', async () => {
    const token = await sign(k1, claims({ instance: 'fp-1' }));
    await new LicenseCache({ path: cacheFile, verify: verifyOptions() }).accept(token);
    const later = NOW_MS + 8 * 86400 * 1000;
    await expect(new LicenseCache({ path: cacheFile, verify: verifyOptions(later) }).load()).resolves.toMatchObject({ decision: 'expired' });
    // The owner winds the clock back to a day after issue: the license is within its validity again.
    const wound = NOW_MS + 86400 * 1000;
    await expect(new LicenseCache({ path: cacheFile, verify: verifyOptions(wound) }).load()).rejects.toMatchObject({ code: 'CLOCK_ROLLED_BACK' });
    expect(JSON.parse(fs.readFileSync(markFile, 'utf8'))).toMatchObject({ iat: T0, expired: T0 + 7 * 86400 });
  });

  test('when a license is refused, then the kept one stays', async () => {
    const cache = new LicenseCache({ path: cacheFile, verify: verifyOptions() });
    const good = await sign(k1, claims());
    await cache.accept(good);
    await expect(cache.accept(await sign(k1, claims({ iat: T0 + 10, instance: 'fp-other' })))).rejects.toMatchObject({ code: 'WRONG_INSTANCE' });
    expect((JSON.parse(fs.readFileSync(cacheFile, 'utf8')) as { token: string }).token).toBe(good);
  });

  test('when the kept file is edited, then load refuses it (signature), and an unreadable file is STORE_CORRUPT', async () => {
    const token = await sign(k1, claims({ status: 'expired' }));
    await new LicenseCache({ path: cacheFile, verify: verifyOptions() }).accept(token);
    const [h, , s] = token.split('.');
    const edited = `${h}.${Buffer.from(JSON.stringify(claims({ status: 'active' }))).toString('base64url')}.${s}`;
    fs.writeFileSync(cacheFile, JSON.stringify({ version: 1, token: edited }));
    await expect(new LicenseCache({ path: cacheFile, verify: verifyOptions() }).load()).rejects.toMatchObject({ code: 'BAD_SIGNATURE' });
    fs.writeFileSync(cacheFile, '{');
    await expect(new LicenseCache({ path: cacheFile, verify: verifyOptions() }).load()).rejects.toMatchObject({ code: 'STORE_CORRUPT' });
  });

  test('when a newer license was accepted since the kept one, then the kept one is a replay', async () => {
    await new LicenseCache({ path: cacheFile, verify: verifyOptions() }).accept(await sign(k1, claims({ iat: T0 - 3600 })));
    await verifyLicense(await sign(k1, claims()), verifyOptions());
    await expect(new LicenseCache({ path: cacheFile, verify: verifyOptions() }).load()).rejects.toMatchObject({ code: 'REPLAYED' });
  });

  test('when cleared, then nothing is kept, and the mark stays', async () => {
    const cache = new LicenseCache({ path: cacheFile, verify: verifyOptions() });
    await cache.accept(await sign(k1, claims()));
    await cache.clear();
    expect(fs.existsSync(cacheFile)).toBe(false);
    expect(cache.current).toBeNull();
    expect(fs.existsSync(markFile)).toBe(true);
  });
});
