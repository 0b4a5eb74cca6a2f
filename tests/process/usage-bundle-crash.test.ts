/**
 * An instance killed (SIGKILL) while it exports usage, and while it imports a receipt, at every
 * file-system step of each (bundle-crash-child.ts), and at each write also halfway through it. After
 * each kill, from a fresh copy of the same folders: nothing queued is lost or changed by an export, a
 * seq is recorded only with its file complete, no half-written file is ever at the bundle's name, and
 * the next export continues the chain; an import never acknowledges an event the receipt does not
 * cover, never dead-letters one twice, and importing again finishes the job (then REPLAYED).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { compactVerify, importJWK } from 'jose';
import { BillingClient, bundleDigest, type ClientLicenseOptions } from '../../packages/client';
import { answerJson, FP, freshLicense, readBundle, receiptClaims, signReceipt } from '../client/bundle-fixtures';
import { CUSTOMER, ISSUER, jwksOf, makeKey, type TestKey } from '../client/license-fixtures';
import { runTsChild } from '../helpers/ts-child';

const CHILD = path.join(__dirname, 'bundle-crash-child.ts');
let key: TestKey;
let root: string;

const child = (env: Record<string, string>) => runTsChild(CHILD, env);

/** A site's folders: the queue, the license folder, the keys built into its software, and where bundles go. */
interface Site {
  dir: string;
  queueDir: string;
  licenseDir: string;
  keysFile: string;
  out: string;
}

const site = (dir: string): Site => ({
  dir,
  queueDir: path.join(dir, 'queue'),
  licenseDir: path.join(dir, 'license'),
  keysFile: path.join(dir, 'keys.json'),
  out: path.join(dir, 'out'),
});
const licenseOptions = (s: Site): ClientLicenseOptions => ({
  customerId: CUSTOMER,
  fingerprint: FP,
  dir: s.licenseDir,
  trustedKeys: s.keysFile,
  issuer: ISSUER,
});
const clientOf = (s: Site) => new BillingClient({ offline: true, queueDir: s.queueDir, license: licenseOptions(s) });
const envOf = (s: Site, op: 'export' | 'import', crashAt: number, mode: 'before' | 'torn') => ({
  OP: op,
  CRASH_AT: String(crashAt),
  CRASH_MODE: mode,
  QUEUE_DIR: s.queueDir,
  LICENSE_DIR: s.licenseDir,
  TRUSTED_KEYS: s.keysFile,
  CUSTOMER_ID: CUSTOMER,
  FINGERPRINT: FP,
  ISSUER,
  OUT: path.join(s.out, 'usage-2.jws'),
  RECEIPT: path.join(s.dir, 'answer.json'),
});
const ev = (i: number) => ({ metric: 'api_calls', quantity: i, idempotency_key: `ev-${i}` });

/** The queued events' keys, oldest first: the last `queued()` lines of the segments (what a client reads back after the acknowledgement). */
async function pendingKeys(c: BillingClient, dir: string): Promise<string[]> {
  const n = (await c.queued()).events;
  const lines = fs
    .readdirSync(dir)
    .filter((f) => f.startsWith('segment-'))
    .sort()
    .flatMap((f) =>
      fs
        .readFileSync(path.join(dir, f), 'utf8')
        .split('\n')
        .filter((l) => l !== ''),
    );
  return lines.slice(lines.length - n).map((l) => (JSON.parse(l) as { idempotency_key: string }).idempotency_key);
}

/** Every step of a run that completes, then a kill before each, and halfway through each write. */
async function crashPoints(template: Site, op: 'export' | 'import'): Promise<{ at: number; mode: 'before' | 'torn'; step: string }[]> {
  const census = fresh(template, 'census');
  const run = await child(envOf(census, op, 0, 'before'));
  expect(run).toMatchObject({ code: 0 });
  const steps = (JSON.parse(run.stdout) as { steps: string[] }).steps;
  expect(steps.length).toBeGreaterThan(5);
  return steps.flatMap((step, i) => [
    { at: i + 1, mode: 'before' as const, step },
    ...(/^(write|writeFile|appendFile) /.test(step) && step !== 'write ack.json' ? [{ at: i + 1, mode: 'torn' as const, step }] : []),
  ]);
}

let runs = 0;
/** A copy of the template site, as it was before the crash. */
function fresh(template: Site, name = `run-${++runs}`): Site {
  const dir = path.join(root, name);
  fs.cpSync(template.dir, dir, { recursive: true });
  return site(dir);
}

beforeAll(async () => {
  key = await makeKey('license-k1');
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-bundle-crash-'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

async function makeTemplate(name: string): Promise<{ site: Site; first: ReturnType<typeof readBundle> }> {
  const s = site(path.join(root, name));
  fs.mkdirSync(s.out, { recursive: true });
  fs.writeFileSync(s.keysFile, JSON.stringify(jwksOf(key)));
  const c = clientOf(s);
  await c.reportUsage([1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map(ev));
  await c.exportUsage(path.join(s.out, 'usage-1.jws'));
  await c.reportUsage([11, 12, 13].map(ev));
  await c.close();
  return { site: s, first: readBundle(path.join(s.out, 'usage-1.jws')) };
}

describe('an instance killed while it exports usage', () => {
  test('when it is killed at any step of an export, then the queue is as it was, a recorded seq always has its complete file, and the next export continues the chain', async () => {
    const { site: template, first } = await makeTemplate('export-template');
    const all = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13].map((i) => `ev-${i}`);
    const points = await crashPoints(template, 'export');
    const publicJwk = JSON.parse(fs.readFileSync(path.join(template.queueDir, 'instance-key.json'), 'utf8')) as { x: string };
    const instanceKey = await importJWK({ kty: 'OKP', crv: 'Ed25519', x: publicJwk.x }, 'EdDSA');

    for (const point of points) {
      const s = fresh(template);
      const run = await child(envOf(s, 'export', point.at, point.mode));
      expect({ point, signal: run.signal, stderr: run.stderr.trim() }).toEqual({
        point,
        signal: 'SIGKILL',
        stderr: expect.stringContaining(`killed at step ${point.at}`),
      });

      const state = JSON.parse(fs.readFileSync(path.join(s.queueDir, 'usage-bundles.json'), 'utf8'));
      const bundleFile = path.join(s.out, 'usage-2.jws');
      // A file at the bundle's name is always whole: it verifies with the instance key.
      if (fs.existsSync(bundleFile)) {
        const text = fs.readFileSync(bundleFile, 'utf8');
        await expect(compactVerify(text.trim(), instanceKey)).resolves.toBeDefined();
      }
      // A seq recorded has its file, complete, with the digest recorded.
      expect({ point, seq: [1, 2].includes(state.seq) }).toEqual({ point, seq: true });
      if (state.seq === 2) {
        expect(bundleDigest(fs.readFileSync(bundleFile, 'utf8'))).toBe(state.last_digest);
        expect(readBundle(bundleFile).payload).toMatchObject({ seq: 2, previous: first.digest });
      }

      const c = clientOf(s);
      try {
        // Nothing queued lost or changed.
        expect({ point, pending: await pendingKeys(c, s.queueDir) }).toEqual({ point, pending: all });
        // The next export: the chain goes on from what was recorded, and an unfinished export left nothing behind.
        const next = await c.exportUsage(path.join(s.out, 'usage-next.jws'));
        const recorded = state.seq === 2;
        expect({ point, seq: next.seq, previous: next.previous }).toEqual({
          point,
          seq: recorded ? 3 : 2,
          previous: recorded ? state.last_digest : first.digest,
        });
        expect({ point, events: next.events }).toEqual({ point, events: 13 });
        if (!recorded) expect({ point, orphan: fs.existsSync(bundleFile) }).toEqual({ point, orphan: false });
        expect({ point, leftovers: fs.readdirSync(s.out).filter((f) => f.startsWith('.')) }).toEqual({ point, leftovers: [] });
        expect(JSON.parse(fs.readFileSync(path.join(s.queueDir, 'usage-bundles.json'), 'utf8')).exporting).toBeNull();
      } finally {
        await c.close();
      }
      fs.rmSync(s.dir, { recursive: true, force: true });
    }
  }, 600_000);
});

describe('an instance killed while it imports a receipt', () => {
  test('when it is killed at any step of an import, then nothing the receipt does not cover is acknowledged, no event is dead-lettered twice, and importing again finishes the job', async () => {
    const { site: template, first } = await makeTemplate('import-template');
    const license = await freshLicense(key);
    const claims = receiptClaims(first, {
      rejected: [
        { idempotency_key: 'ev-3', reason: 'metric not on the plan' },
        { idempotency_key: 'ev-7', reason: 'too old' },
      ],
    });
    fs.writeFileSync(path.join(template.dir, 'answer.json'), answerJson(await signReceipt(key, claims), claims, license));
    const all = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13].map((i) => `ev-${i}`);
    const after = ['ev-11', 'ev-12', 'ev-13'];
    const points = await crashPoints(template, 'import');

    for (const point of points) {
      const s = fresh(template);
      const run = await child(envOf(s, 'import', point.at, point.mode));
      expect({ point, signal: run.signal }).toEqual({ point, signal: 'SIGKILL' });

      const c = clientOf(s);
      try {
        const pending = await pendingKeys(c, s.queueDir);
        // All of the bundle or none of it: never an event queued after the export.
        expect({ point, ok: [all.join(), after.join()].includes(pending.join()) }).toEqual({ point, ok: true });
        const dead = (await c.deadLetters()).map((d) => d.event?.idempotency_key);
        expect({ point, twice: dead.length !== new Set(dead).size }).toEqual({ point, twice: false });
        // Refused events are dead letters before the bundle leaves the queue.
        if (pending.length === after.length) expect({ point, dead: [...dead].sort() }).toEqual({ point, dead: ['ev-3', 'ev-7'] });

        const imported = JSON.parse(fs.readFileSync(path.join(s.queueDir, 'usage-bundles.json'), 'utf8')).bundles[0].imported_at !== null;
        const again = await c.importReceipt(path.join(s.dir, 'answer.json')).then(
          (r) => r,
          (err: unknown) => err,
        );
        if (imported) expect({ point, code: (again as { code?: string }).code }).toEqual({ point, code: 'REPLAYED' });
        else expect({ point, again }).toEqual({ point, again: expect.objectContaining({ seq: 1, licenseError: null }) });

        // Finished: the bundle's events gone, each refused one dead-lettered once, the license kept, a third import refused.
        expect({ point, pending: await pendingKeys(c, s.queueDir) }).toEqual({ point, pending: after });
        expect({ point, dead: (await c.deadLetters()).map((d) => d.event?.idempotency_key).sort() }).toEqual({ point, dead: ['ev-3', 'ev-7'] });
        expect(JSON.parse(fs.readFileSync(path.join(s.licenseDir, 'license.json'), 'utf8')).token).toBe(license);
        await expect(c.importReceipt(path.join(s.dir, 'answer.json'))).rejects.toMatchObject({ code: 'REPLAYED' });
      } finally {
        await c.close();
      }
      fs.rmSync(s.dir, { recursive: true, force: true });
    }
  }, 600_000);
});
