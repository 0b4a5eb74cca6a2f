import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isLicenseError } from '../../packages/client/license-errors';
import { fileLicenseStore, memoryLicenseStore } from '../../packages/client/license-store';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'license-store-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('fileLicenseStore', () => {
  test('when the file is missing, then there is no mark yet; advancing writes iat and jti only, mode 0600, with no temp file left', async () => {
    const file = path.join(dir, 'sub', 'license-mark.json');
    const store = fileLicenseStore(file);
    expect(await store.read()).toBeNull();
    await store.advance({ iat: 100, jti: 'a' });
    expect(await store.read()).toEqual({ iat: 100, jti: 'a' });
    const content = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    expect(Object.keys(content).sort()).toEqual(['iat', 'jti', 'updatedAt', 'version']);
    expect(content).toMatchObject({ version: 1, iat: 100, jti: 'a' });
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(path.dirname(file))).toEqual(['license-mark.json']);
  });

  test('when a store is opened again on the same file (a restart), then it reads the mark', async () => {
    const file = path.join(dir, 'mark.json');
    await fileLicenseStore(file).advance({ iat: 200, jti: 'b' });
    expect(await fileLicenseStore(file).read()).toEqual({ iat: 200, jti: 'b' });
  });

  test('when asked to advance to an older mark, even concurrently, then it keeps the newest', async () => {
    const store = fileLicenseStore(path.join(dir, 'mark.json'));
    await Promise.all([300, 100, 250, 299, 50].map((iat) => store.advance({ iat, jti: `j${iat}` })));
    expect(await store.read()).toEqual({ iat: 300, jti: 'j300' });
    await store.advance({ iat: 10, jti: 'old' });
    expect(await store.read()).toEqual({ iat: 300, jti: 'j300' });
  });

  test.each([
    ['not JSON', '{"version":1,"iat":'],
    ['empty', ''],
    ['wrong version', '{"version":2,"iat":1,"jti":"a"}'],
    ['iat not a number', '{"version":1,"iat":"1","jti":"a"}'],
    ['no jti', '{"version":1,"iat":1}'],
    ['an array', '[]'],
  ])('when the file is corrupt (%s), then STORE_CORRUPT, and the file is left as it was', async (_what, text) => {
    const file = path.join(dir, 'mark.json');
    fs.writeFileSync(file, text);
    const store = fileLicenseStore(file);
    const err: unknown = await store.read().catch((e: unknown) => e);
    expect(isLicenseError(err, 'STORE_CORRUPT')).toBe(true);
    expect((err as Error).message).toContain(file);
    await expect(store.advance({ iat: 5, jti: 'x' })).rejects.toMatchObject({ code: 'STORE_CORRUPT' });
    expect(fs.readFileSync(file, 'utf8')).toBe(text);
  });
});

describe('memoryLicenseStore', () => {
  test('when advanced, then it only moves forward (a same-second license takes its jti)', async () => {
    const store = memoryLicenseStore();
    await store.advance({ iat: 10, jti: 'a' });
    await store.advance({ iat: 5, jti: 'b' });
    expect(await store.read()).toEqual({ iat: 10, jti: 'a' });
    await store.advance({ iat: 10, jti: 'c' });
    expect(await store.read()).toEqual({ iat: 10, jti: 'c' });
  });
});
