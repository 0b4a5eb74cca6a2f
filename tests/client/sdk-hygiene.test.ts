/**
 * The SDK's folders, files and requests as another local user or a server of the attacker's own
 * would go around them: a world-writable (or someone else's) queue folder, symbolic links and hard
 * links planted at the queue's files and at the license files, a predicted temporary file name, an
 * unreadable line whose bytes must not be copied, and a redirect to another origin. Each attack is
 * refused or harmless, proven by the target file left as it was; each refusal has its control.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  BillingClient,
  LicenseCache,
  RedirectRefusedError,
  UnsafePathError,
  UsageReportError,
  fileLicenseStore,
  type BillingClientOptions,
} from '../../packages/client';
import { writeFileAtomic } from '../../packages/client/private-fs';
import { FakeUsageService } from './fake-usage-service';
import { claims, CUSTOMER, jwksOf, makeKey, sign, signKeySet, type TestKey } from './license-fixtures';

const NOBODY = 65534;
const asRoot = process.getuid?.() === 0;
let svc: FakeUsageService;
let work: string;
let target: string;
const TARGET_CONTENT = 'what another user must neither read nor change\nno newline at the end';
const open: BillingClient[] = [];
const client = (queueDir: string, o: Partial<BillingClientOptions> = {}) => {
  const c = new BillingClient({
    baseUrl: svc.url,
    apiKey: 'test-key',
    queueDir,
    backoffBaseMs: 5,
    backoffMaxMs: 20,
    maxRetries: 0,
    flushIntervalMs: 60_000,
    ...o,
  });
  open.push(c);
  return c;
};
const ev = (i: number, metric = 'api_calls') => ({ metric, quantity: 1, idempotency_key: `h-${i}` });
const SEGMENT0 = 'segment-000000000000.jsonl';
/** The target as it was: same bytes, same inode, one name, not modified. */
const snapshot = (f: string) => {
  const st = fs.statSync(f);
  return { content: fs.readFileSync(f, 'utf8'), ino: st.ino, nlink: st.nlink, mtimeMs: st.mtimeMs, size: st.size };
};
let before: ReturnType<typeof snapshot>;
const privateDir = (name: string) => {
  const d = path.join(work, name);
  fs.mkdirSync(d, { mode: 0o700 });
  return d;
};
const refusal = async (p: Promise<unknown>) => {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UnsafePathError);
  return err as UnsafePathError;
};

beforeEach(async () => {
  svc = new FakeUsageService();
  await svc.start();
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-hygiene-'));
  const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-hygiene-target-'));
  target = path.join(elsewhere, 'target.txt');
  fs.writeFileSync(target, TARGET_CONTENT, { mode: 0o600 });
  before = snapshot(target);
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
  await svc.stop();
  expect(snapshot(target)).toEqual(before);
  fs.rmSync(work, { recursive: true, force: true });
  fs.rmSync(path.dirname(target), { recursive: true, force: true });
});

describe('the queue folder', () => {
  test('when the queue folder is world-writable and holds a symbolic link at the segment, then UnsafePathError (mode), nothing is written through it; once it is 0700 and clean, the queue works', async () => {
    const dir = privateDir('queue');
    fs.chmodSync(dir, 0o777);
    fs.symlinkSync(target, path.join(dir, SEGMENT0));
    const err = await refusal(client(dir).reportUsage(ev(1)));
    expect(err).toMatchObject({ reason: 'mode', path: dir });
    expect(err.message).toMatch(/writable by group or others \(mode 777\)/);
    expect(fs.readdirSync(dir)).toEqual([SEGMENT0]);

    // Control: the same folder, made private and without the planted link.
    fs.rmSync(path.join(dir, SEGMENT0));
    fs.chmodSync(dir, 0o700);
    const c = client(dir);
    await c.reportUsage(ev(2));
    expect(await c.flush()).toMatchObject({ sent: 1 });
    expect([...svc.stored.keys()]).toEqual(['h-2']);
  });

  test('when the queue folder is group-writable, then UnsafePathError (mode)', async () => {
    const dir = privateDir('queue');
    fs.chmodSync(dir, 0o770);
    expect(await refusal(client(dir).reportUsage(ev(1)))).toMatchObject({ reason: 'mode' });
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  test('when the queue folder is inside a world-writable folder without the sticky bit, then UnsafePathError (parent); with the sticky bit (as /tmp), it is used', async () => {
    const open777 = privateDir('shared');
    fs.chmodSync(open777, 0o777);
    const dir = path.join(open777, 'queue');
    fs.mkdirSync(dir, { mode: 0o700 });
    expect(await refusal(client(dir).reportUsage(ev(1)))).toMatchObject({ reason: 'parent' });
    expect(fs.readdirSync(dir)).toEqual([]);

    fs.chmodSync(open777, 0o1777);
    const c = client(dir);
    await c.reportUsage(ev(1));
    expect(await c.queued()).toMatchObject({ events: 1 });
  });

  (asRoot ? test : test.skip)(
    'when the queue folder belongs to another user, or is a symbolic link another user planted, then UnsafePathError (owner, symlink)',
    async () => {
      const theirs = privateDir('theirs');
      fs.chownSync(theirs, NOBODY, NOBODY);
      expect(await refusal(client(theirs).reportUsage(ev(1)))).toMatchObject({ reason: 'owner' });
      expect(fs.readdirSync(theirs)).toEqual([]);

      const mine = privateDir('mine');
      const planted = path.join(work, 'planted');
      fs.symlinkSync(mine, planted);
      fs.lchownSync(planted, NOBODY, NOBODY);
      expect(await refusal(client(planted).reportUsage(ev(1)))).toMatchObject({ reason: 'symlink' });
      expect(fs.readdirSync(mine)).toEqual([]);

      // Control: a link this user made to its own private folder is followed.
      fs.lchownSync(planted, 0, 0);
      const c = client(planted);
      await c.reportUsage(ev(2));
      expect(fs.readdirSync(mine)).toContain(SEGMENT0);
    },
  );
});

describe('files in a private queue folder', () => {
  test('when a symbolic link is at the segment file, then UnsafePathError (symlink) and the target is neither read nor cut', async () => {
    const dir = privateDir('queue');
    fs.symlinkSync(target, path.join(dir, SEGMENT0));
    expect(await refusal(client(dir).reportUsage(ev(1)))).toMatchObject({ reason: 'symlink' });
    expect(fs.existsSync(path.join(dir, 'dead-letter.jsonl'))).toBe(false);
  });

  test('when the segment file is a hard link to another file, then UnsafePathError (hard-link), and its torn last line is not cut off', async () => {
    const dir = privateDir('queue');
    fs.linkSync(target, path.join(dir, SEGMENT0));
    before = { ...before, nlink: 2 };
    expect(await refusal(client(dir).reportUsage(ev(1)))).toMatchObject({ reason: 'hard-link' });
    fs.rmSync(path.join(dir, SEGMENT0));
    before = { ...before, nlink: 1 };
  });

  test.each(['ack.json', 'lock'])('when a symbolic link is at %s, then UnsafePathError and the target is neither read nor overwritten', async (name) => {
    const dir = privateDir('queue');
    fs.symlinkSync(target, path.join(dir, name));
    expect(await refusal(client(dir).reportUsage(ev(1)))).toMatchObject({ reason: 'symlink' });
    expect(fs.readdirSync(dir)).toEqual([name]);
  });

  (asRoot ? test : test.skip)('when ack.json was pre-created by another user, then UnsafePathError (owner)', async () => {
    const dir = privateDir('queue');
    fs.writeFileSync(path.join(dir, 'ack.json'), '{"version":1,"segment":0,"offset":999999}\n');
    fs.chownSync(path.join(dir, 'ack.json'), NOBODY, NOBODY);
    expect(await refusal(client(dir).reportUsage(ev(1)))).toMatchObject({ reason: 'owner' });
  });

  test('when a symbolic link is at dead-letter.jsonl, then a refused event is not written through it and stays queued; without the link it is dead-lettered', async () => {
    const dir = privateDir('queue');
    fs.symlinkSync(target, path.join(dir, 'dead-letter.jsonl'));
    const c = client(dir);
    await c.reportUsage([ev(1), ev(2, 'bad_metric')]);
    expect(await refusal(c.flush())).toMatchObject({ reason: 'symlink' });
    expect(await c.queued()).toMatchObject({ events: 2 });

    fs.rmSync(path.join(dir, 'dead-letter.jsonl'));
    await c.flush(); // (the background loop may have sent them first)
    expect(await c.queued()).toMatchObject({ events: 0 });
    expect([...svc.stored.keys()]).toEqual(['h-1']);
    expect((await c.deadLetters()).map((d) => d.event?.idempotency_key)).toEqual(['h-2']);
  });

  test('when a segment holds an unreadable line, then its dead letter names the file, byte offset and length, and never copies its bytes', async () => {
    const dir = privateDir('queue');
    const first = client(dir);
    await first.reportUsage(ev(1));
    await first.close();
    const seg = path.join(dir, SEGMENT0);
    const offset = fs.statSync(seg).size;
    const secret = 'root:$6$SECRET-HASH-FROM-SOMEWHERE-ELSE:19000:0:99999:7:::';
    fs.appendFileSync(seg, `${secret}\n`);
    fs.appendFileSync(seg, JSON.stringify(ev(3)) + '\n');

    const c = client(dir);
    expect(await c.flush()).toMatchObject({ sent: 2 });
    expect([...svc.stored.keys()]).toEqual(['h-1', 'h-3']);
    const dead = await c.deadLetters();
    expect(dead).toEqual([expect.objectContaining({ event: null, code: 'UNREADABLE_LINE', source: { file: SEGMENT0, offset, length: secret.length + 1 } })]);
    expect(fs.readFileSync(path.join(dir, 'dead-letter.jsonl'), 'utf8')).not.toContain('SECRET');
  });
});

describe('the license folder', () => {
  test('when the license folder is world-writable, then writing the mark is UnsafePathError and nothing is written; in a 0700 folder it is written', async () => {
    const dir = privateDir('license');
    fs.chmodSync(dir, 0o777);
    const store = fileLicenseStore(path.join(dir, 'license-mark.json'));
    expect(await refusal(store.advance({ iat: 100, jti: 'a' }))).toMatchObject({ reason: 'mode' });
    expect(fs.readdirSync(dir)).toEqual([]);

    fs.chmodSync(dir, 0o700);
    await store.advance({ iat: 100, jti: 'a' });
    expect(await store.read()).toEqual({ iat: 100, jti: 'a' });
    expect(fs.statSync(path.join(dir, 'license-mark.json')).mode & 0o777).toBe(0o600);
  });

  test('when a symbolic link is at the license file, then the write replaces the link, never the target', async () => {
    const dir = privateDir('license');
    const file = path.join(dir, 'license.json');
    fs.symlinkSync(target, file);
    await writeFileAtomic(file, '{"version":1}\n', 0o600, 'license');
    expect(fs.lstatSync(file).isSymbolicLink()).toBe(false);
    expect(fs.readFileSync(file, 'utf8')).toBe('{"version":1}\n');
  });

  test('when a symbolic link is planted at the temporary file name (the name predicted), then the write is refused, the target is intact and no temporary file is left', async () => {
    const dir = privateDir('license');
    const file = path.join(dir, 'license.json');
    const fixed = Buffer.from('0123456789ab', 'hex');
    const spy = jest.spyOn(crypto, 'randomBytes').mockImplementation(() => Buffer.from(fixed));
    try {
      const tmp = path.join(dir, `.license.json.${process.pid}.${fixed.subarray(0, 6).toString('hex')}.tmp`);
      fs.symlinkSync(target, tmp);
      const err = await writeFileAtomic(file, 'x', 0o600, 'license').catch((e: unknown) => e);
      expect((err as NodeJS.ErrnoException).code).toBe('EEXIST');
      expect(fs.readdirSync(dir)).toEqual([path.basename(tmp)]);
      expect(fs.lstatSync(tmp).isSymbolicLink()).toBe(true);
      // Control: with nothing at the name the same write succeeds.
      fs.rmSync(tmp);
      await writeFileAtomic(file, 'x', 0o600, 'license');
      expect(fs.readdirSync(dir)).toEqual(['license.json']);
    } finally {
      spy.mockRestore();
    }
  });
});

/** Licenses as the service answers them (through `fetch`): signed by `key`, whose key set `root` signs. */
const FP = 'instance-hygiene';
const API_KEY = `cust_${CUSTOMER}_${'s'.repeat(43)}`;
const nowSec = () => Math.floor(Date.now() / 1000);
let key: TestKey;
let root: TestKey;
let licenseToken: string;
let keySet: string;
let serviceDown = false;
const asked: string[] = [];
const answer = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
const licenseFetch: typeof fetch = async (input) => {
  const url = new URL(input instanceof Request ? input.url : String(input));
  asked.push(url.pathname);
  if (serviceDown) throw new TypeError('fetch failed');
  if (url.pathname === '/api/licenses') return answer(200, { license: licenseToken, claims: {}, jwks_url: 'http://127.0.0.1:9/.well-known/jwks.json' });
  if (url.pathname === '/.well-known/license-keys') return answer(200, { key_set: keySet });
  return answer(404, { error: { code: 'NOT_FOUND', message: 'no route' } });
};
const licensed = (dir: string, license: Record<string, unknown> = {}) =>
  new BillingClient({
    baseUrl: 'http://127.0.0.1:9',
    apiKey: API_KEY,
    fetch: licenseFetch,
    maxRetries: 0,
    license: { fingerprint: FP, dir, trustedKeys: jwksOf(key), ...license },
  });
/** A client of another user plants `name` in the license folder: a symbolic link to the target, owned by that user. */
const plantLink = (dir: string, name: string) => {
  fs.symlinkSync(target, path.join(dir, name));
  if (asRoot) fs.lchownSync(path.join(dir, name), NOBODY, NOBODY);
};

beforeAll(async () => {
  [key, root] = await Promise.all([makeKey('hyg-k1'), makeKey('hyg-root')]);
});
beforeEach(async () => {
  serviceDown = false;
  asked.length = 0;
  licenseToken = await sign(key, claims({ iat: nowSec(), exp: nowSec() + 3600, valid_until: nowSec() + 86400, instance: FP }));
  keySet = await signKeySet(root, [key], { iat: nowSec() });
});

describe('files in the license folder', () => {
  test('when the license folder is world-writable, then every license call of the client is UnsafePathError (mode) before anything is asked or written; made 0700, the same client works', async () => {
    const dir = privateDir('license');
    fs.chmodSync(dir, 0o777);
    const c = licensed(dir);
    expect(await refusal(c.getLicense())).toMatchObject({ reason: 'mode', path: dir });
    expect(await refusal(c.verifyLicense(licenseToken))).toMatchObject({ reason: 'mode' });
    expect(asked).toEqual([]);
    expect(fs.readdirSync(dir)).toEqual([]);

    fs.chmodSync(dir, 0o700);
    expect(await c.getLicense()).toMatchObject({ offline: false, decision: 'full' });
    expect(fs.readdirSync(dir).sort()).toEqual(['license-mark.json', 'license.json']);
  });

  test('when the folder of a LicenseCache or a fileLicenseStore is world-writable, then reading it is UnsafePathError (mode), not only writing', async () => {
    const dir = privateDir('license');
    const verify = { trustedKeys: jwksOf(key), customerId: CUSTOMER, fingerprint: FP, store: fileLicenseStore(path.join(dir, 'license-mark.json')) };
    await new LicenseCache({ path: path.join(dir, 'license.json'), verify }).accept(licenseToken);
    fs.chmodSync(dir, 0o777);
    expect(await refusal(new LicenseCache({ path: path.join(dir, 'license.json'), verify }).load())).toMatchObject({ reason: 'mode' });
    expect(await refusal(fileLicenseStore(path.join(dir, 'license-mark.json')).read())).toMatchObject({ reason: 'mode' });

    // Control: the same files, the folder private again.
    fs.chmodSync(dir, 0o700);
    expect(await new LicenseCache({ path: path.join(dir, 'license.json'), verify }).load()).toMatchObject({ decision: 'full' });
    expect(await fileLicenseStore(path.join(dir, 'license-mark.json')).read()).toMatchObject({ jti: expect.any(String) });
  });

  test('when another user plants a symbolic link at license.json, then the kept license is not read through it (UnsafePathError) while the service is out of reach, and a license fetched replaces the link, never the target', async () => {
    const dir = privateDir('license');
    plantLink(dir, 'license.json');
    serviceDown = true;
    const err = await licensed(dir)
      .getLicense()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsafePathError);
    expect(err).toMatchObject({ reason: 'symlink' });

    // Fetched: written beside and renamed over the name: the link goes, the target stays.
    serviceDown = false;
    const fetched = await licensed(dir).getLicense();
    expect(fs.lstatSync(path.join(dir, 'license.json')).isSymbolicLink()).toBe(false);
    // Control: the license kept in its place answers while the service is out of reach.
    serviceDown = true;
    expect(await licensed(dir).getLicense()).toMatchObject({ offline: true, claims: { jti: fetched.claims.jti } });
  });

  test('when another user plants a symbolic link at license-mark.json, then no license is accepted (UnsafePathError) and the link is left as it is; without it, the mark is a private file', async () => {
    const dir = privateDir('license');
    plantLink(dir, 'license-mark.json');
    expect(await refusal(licensed(dir).getLicense())).toMatchObject({ reason: 'symlink' });
    expect(await refusal(licensed(dir).verifyLicense(licenseToken))).toMatchObject({ reason: 'symlink' });
    expect(fs.readdirSync(dir)).toEqual(['license-mark.json']);
    expect(fs.lstatSync(path.join(dir, 'license-mark.json')).isSymbolicLink()).toBe(true);

    fs.rmSync(path.join(dir, 'license-mark.json'));
    expect(await licensed(dir).getLicense()).toMatchObject({ decision: 'full' });
    const mark = fs.lstatSync(path.join(dir, 'license-mark.json'));
    expect([mark.isFile(), mark.mode & 0o777]).toEqual([true, 0o600]);
  });

  test('when another user plants a symbolic link at license-keys.jws, then the kept key set is not read through it (UnsafePathError); without it, the key set is fetched and kept as a private file', async () => {
    const dir = privateDir('license');
    plantLink(dir, 'license-keys.jws');
    const withRoot = { trustedKeys: undefined, trustedRoots: jwksOf(root) };
    expect(await refusal(licensed(dir, withRoot).getLicense())).toMatchObject({ reason: 'symlink' });
    expect(asked).toEqual([]);

    fs.rmSync(path.join(dir, 'license-keys.jws'));
    expect(await licensed(dir, withRoot).getLicense()).toMatchObject({ decision: 'full', kid: key.kid });
    expect(asked).toEqual(['/api/licenses', '/.well-known/license-keys']);
    const kept = fs.lstatSync(path.join(dir, 'license-keys.jws'));
    expect([kept.isFile(), kept.mode & 0o777]).toEqual([true, 0o600]);
    expect(fs.readFileSync(path.join(dir, 'license-keys.jws'), 'utf8').trim()).toBe(keySet);
  });

  (asRoot ? test.each(['license.json', 'license-mark.json', 'license-keys.jws']) : test.skip.each(['license.json']))(
    'when %s was pre-created by another user, then UnsafePathError (owner) and nothing is taken from it',
    async (name) => {
      const dir = privateDir('license');
      fs.writeFileSync(path.join(dir, name), '{"version":1,"iat":1,"jti":"planted"}\n', { mode: 0o644 });
      fs.chownSync(path.join(dir, name), NOBODY, NOBODY);
      serviceDown = name === 'license.json'; // the kept license is read when the service is out of reach
      const c = licensed(dir, name === 'license-keys.jws' ? { trustedKeys: undefined, trustedRoots: jwksOf(root) } : {});
      expect(await refusal(c.getLicense())).toMatchObject({ reason: 'owner' });
    },
  );
});

describe('redirects', () => {
  let got: { method: string; url: string; headers: http.IncomingHttpHeaders; body: string }[];
  let elsewhereUrl: string;
  const servers: http.Server[] = [];
  /** A server on a port of its own (another origin: same host, another port), closed after the test; its address. */
  const listening = async (handler: http.RequestListener): Promise<string> => {
    const server = http.createServer(handler);
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };
  beforeEach(async () => {
    got = [];
    elsewhereUrl = await listening((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        got.push({ method: req.method!, url: req.url!, headers: req.headers, body });
        res.writeHead(201, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ created: 0, replayed: 0, events: [] }));
      });
    });
  });
  afterEach(async () => {
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  test.each([307, 308, 302])(
    'when the service answers %i to another origin, then RedirectRefusedError and the other server gets nothing (no key, no body)',
    async (status) => {
      svc.script.push({ status, body: {}, headers: { location: `${elsewhereUrl}/api/usage` } });
      const c = new BillingClient({ baseUrl: svc.url, apiKey: 'test-key', maxRetries: 3, backoffBaseMs: 5 });
      const err = (await c.reportUsage([ev(1)]).catch((e: unknown) => e)) as UsageReportError;
      expect(err).toBeInstanceOf(UsageReportError);
      expect(err.cause).toBeInstanceOf(RedirectRefusedError);
      expect(err.cause).toMatchObject({ status, from: svc.url, to: elsewhereUrl });
      expect(got).toEqual([]);
      // Not retried: the redirect is not a passing fault.
      expect(svc.requests).toHaveLength(1);
    },
  );

  test('when a GET is redirected to another origin, then RedirectRefusedError and nothing reaches it', async () => {
    const front = await listening((_req, res) => {
      res.writeHead(302, { location: `${elsewhereUrl}/api/me` });
      res.end();
    });
    const c = new BillingClient({ baseUrl: front, apiKey: 'test-key' });
    await expect(c.me()).rejects.toBeInstanceOf(RedirectRefusedError);
    expect(got).toEqual([]);
  });

  test('when the root-signed key set is redirected to another origin, then it is not fetched there (JWKS_UNAVAILABLE, RedirectRefusedError) and the other server gets nothing; a same-origin redirect is followed', async () => {
    let keysAt = `${elsewhereUrl}/.well-known/license-keys`;
    const frontUrl = await listening((req, res) => {
      const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(JSON.stringify(body));
      };
      if (req.url?.startsWith('/api/licenses')) return send(200, { license: licenseToken, claims: {}, jwks_url: null });
      if (req.url === '/.well-known/license-keys') return send(302, {}, { location: keysAt });
      if (req.url === '/keys/current') return send(200, { key_set: keySet });
      send(404, {});
    });
    const sdk = () => new BillingClient({ baseUrl: frontUrl, apiKey: API_KEY, maxRetries: 0, license: { trustedRoots: jwksOf(root) } });
    const err = await sdk()
      .getLicense()
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'JWKS_UNAVAILABLE' });
    expect((err as Error).cause).toBeInstanceOf(RedirectRefusedError);
    expect((err as Error).cause).toMatchObject({ status: 302, from: frontUrl, to: elsewhereUrl });
    expect(got).toEqual([]);

    // Control: a redirect within the service's origin is followed, and the key set verifies the license.
    keysAt = '/keys/current';
    expect(await sdk().getLicense()).toMatchObject({ decision: 'full', kid: key.kid });
    expect(got).toEqual([]);
  });

  test('when the queue flusher is redirected to another origin, then the events stay queued and nothing reaches it; a same-origin 307 is followed with the same body', async () => {
    // The background loop makes at most one attempt here (its backoff is a minute): two redirects cover it and flush().
    const c = client(privateDir('queue'), { backoffBaseMs: 60_000, backoffMaxMs: 60_000 });
    for (let i = 0; i < 2; i++) svc.script.push({ status: 307, body: {}, headers: { location: `${elsewhereUrl}/api/usage` } });
    await c.reportUsage([ev(1), ev(2)]);
    await expect(c.flush()).rejects.toBeInstanceOf(RedirectRefusedError);
    svc.script.length = 0;
    expect(got).toEqual([]);
    expect(await c.queued()).toMatchObject({ events: 2 });

    // Control: a redirect within the service's origin is followed, method and body kept.
    svc.script.push({ status: 307, body: {}, headers: { location: `${svc.url}/api/usage?moved=1` } });
    await c.flush(); // (the background loop may have sent them first)
    expect(await c.queued()).toMatchObject({ events: 0 });
    expect(svc.requests.length).toBeGreaterThanOrEqual(3);
    expect(svc.requests.every((keys) => keys.join() === 'h-1,h-2')).toBe(true);
    expect([...svc.stored.keys()]).toEqual(['h-1', 'h-2']);
    expect(got).toEqual([]);
  });
});
