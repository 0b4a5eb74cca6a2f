/**
 * The billing-client CLI end to end on files, as an air-gapped site and a connected machine run it:
 * activation-request, export-usage, upload-usage (against a small stand-in for POST
 * /api/usage/bundles that checks the bundle's signature with the key of the activation request) and
 * import-receipt; then the refusals (a receipt imported twice, a queue folder in use, a wrong command
 * line, a missing API key, a wrong one) with their exit codes, and no secret in any output.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { compactVerify, importJWK } from 'jose';
import { BillingClient, bundleDigest, type UsageBundlePayload } from '../../packages/client';
import { answerJson, FP, freshLicense, receiptClaims, signReceipt } from './bundle-fixtures';
import { CUSTOMER, ISSUER, jwksOf, makeKey, type TestKey } from './license-fixtures';

const CLI = path.resolve(__dirname, '../../packages/client/cli.ts');
const API_KEY = `cust_${CUSTOMER}_${'q'.repeat(43)}`;
let key: TestKey;
let work: string;
let queueDir: string;
let server: http.Server;
let url: string;
/** The instance key the service knows (from the activation request). */
let activationKey: { kty: 'OKP'; crv: 'Ed25519'; x: string } | null = null;
const uploads: string[] = [];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--require', require.resolve('tsx/cjs'), CLI, ...args], {
      cwd: work,
      env: { ...process.env, BILLING_API_URL: undefined, BILLING_API_KEY: undefined, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** POST /api/usage/bundles as the service answers it: the bundle checked against the activation's key, a receipt and a fresh license. */
async function answer(req: http.IncomingMessage, body: string, res: http.ServerResponse): Promise<void> {
  const send = (status: number, value: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(value));
  };
  if (req.method !== 'POST' || req.url !== '/api/usage/bundles') return send(404, { error: { code: 'NOT_FOUND', message: 'no route' } });
  if (req.headers['x-api-key'] !== API_KEY) return send(401, { error: { code: 'UNAUTHORIZED', message: 'Invalid API key' } });
  const text = (JSON.parse(body) as { bundle: string }).bundle;
  uploads.push(text);
  let payload: UsageBundlePayload;
  try {
    payload = JSON.parse(new TextDecoder().decode((await compactVerify(text, await importJWK(activationKey!, 'EdDSA'))).payload));
  } catch {
    return send(422, { error: { code: 'BUNDLE_SIGNATURE_INVALID', message: 'The bundle is not signed by this instance’s key' } });
  }
  const bundle = { text, header: { alg: 'EdDSA', typ: 'usage-bundle+jws', kid: '' }, payload, digest: bundleDigest(text) };
  const claims = receiptClaims(bundle, { rejected: [{ idempotency_key: 'ev-2', reason: 'metric not on the plan' }] });
  send(200, JSON.parse(answerJson(await signReceipt(key, claims), claims, await freshLicense(key))));
}

beforeAll(async () => {
  key = await makeKey('license-k1');
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => void answer(req, body, res));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});
beforeEach(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-cli-'));
  queueDir = path.join(work, 'queue');
  fs.writeFileSync(path.join(work, 'license-keys.json'), JSON.stringify(jwksOf(key)));
});
afterEach(() => fs.rmSync(work, { recursive: true, force: true }));

/** What the vendor's software did: reported usage into its queue (offline), then stopped. */
async function reported(keys: string[]): Promise<void> {
  const c = new BillingClient({ offline: true, queueDir });
  await c.reportUsage(keys.map((k) => ({ metric: 'api_calls', quantity: 2, idempotency_key: k })));
  await c.close();
}

const secretsIn = (runs: Run[]) => {
  const instanceD = (JSON.parse(fs.readFileSync(path.join(queueDir, 'instance-key.json'), 'utf8')) as { d: string }).d;
  return runs.filter((r) => `${r.stdout}${r.stderr}`.includes(API_KEY) || `${r.stdout}${r.stderr}`.includes(instanceD));
};

describe('billing-client (the CLI)', () => {
  test('when a site runs the round trip on files, then activation request, export, upload, import each work and the queue ends with only what came after the export', async () => {
    const runs: Run[] = [];
    const request = await cli([
      'activation-request',
      '--queue-dir',
      queueDir,
      '--fingerprint',
      FP,
      '--name',
      'vault',
      '--customer-id',
      CUSTOMER,
      '--out',
      'request.json',
    ]);
    runs.push(request);
    expect(request).toMatchObject({ code: 0, stderr: '' });
    expect(request.stdout).toMatch(/carry it to the vendor/);
    const req = JSON.parse(fs.readFileSync(path.join(work, 'request.json'), 'utf8'));
    expect(req).toMatchObject({
      format: 'activation-request/1',
      customer_id: CUSTOMER,
      body: { fingerprint: FP, name: 'vault', instance_key: { kty: 'OKP' } },
    });
    activationKey = req.body.instance_key;

    await reported(['ev-1', 'ev-2', 'ev-3']);
    const exported = await cli(['export-usage', '--queue-dir', queueDir, '--out', 'usage-1.jws', '--customer-id', CUSTOMER, '--fingerprint', FP]);
    runs.push(exported);
    expect(exported).toMatchObject({ code: 0, stderr: '' });
    expect(exported.stdout).toContain('Wrote usage bundle seq 1 (3 events)');
    await reported(['ev-4']);

    // On a connected machine: the file goes up, the answer comes back as a file.
    const upload = await cli(['upload-usage', '--bundle', 'usage-1.jws', '--out', 'answer-1.json'], { BILLING_API_URL: url, BILLING_API_KEY: API_KEY });
    runs.push(upload);
    expect(upload).toMatchObject({ code: 0, stderr: '' });
    expect(upload.stdout).toMatch(/Uploaded bundle seq 1 .* 2 applied, 0 already stored, 1 rejected/);
    expect(uploads).toEqual([fs.readFileSync(path.join(work, 'usage-1.jws'), 'utf8').trim()]);
    const carried = JSON.parse(fs.readFileSync(path.join(work, 'answer-1.json'), 'utf8'));
    expect(carried).toMatchObject({ receipt: expect.any(String), license: expect.any(String), license_error: null });

    const imported = await cli([
      'import-receipt',
      '--queue-dir',
      queueDir,
      '--receipt',
      'answer-1.json',
      '--trusted-keys',
      'license-keys.json',
      '--license-dir',
      'license',
      '--issuer',
      ISSUER,
    ]);
    runs.push(imported);
    expect(imported).toMatchObject({ code: 0, stderr: '' });
    expect(imported.stdout).toContain('3 events acknowledged, 1 dead-lettered');
    expect(imported.stdout).toMatch(/New license kept: full, valid until/);
    expect(fs.existsSync(path.join(work, 'license', 'license.json'))).toBe(true);
    const after = new BillingClient({ offline: true, queueDir });
    expect(await after.queued()).toMatchObject({ events: 1 });
    expect((await after.deadLetters()).map((d) => [d.event?.idempotency_key, d.message])).toEqual([['ev-2', 'metric not on the plan']]);
    await after.close();

    // The same answer again: refused, nothing changed.
    const again = await cli([
      'import-receipt',
      '--queue-dir',
      queueDir,
      '--receipt',
      'answer-1.json',
      '--trusted-keys',
      'license-keys.json',
      '--license-dir',
      'license',
    ]);
    runs.push(again);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/ReceiptError REPLAYED/);

    // The next export knows its customer and fingerprint, and carries only what is left; --json for scripts.
    const next = await cli(['export-usage', '--queue-dir', queueDir, '--out', 'usage-2.jws', '--json']);
    runs.push(next);
    expect(next.code).toBe(0);
    expect(JSON.parse(next.stdout)).toMatchObject({ seq: 2, events: 1, remaining: 0, file: path.join(work, 'usage-2.jws') });
    expect(secretsIn(runs)).toEqual([]);
  }, 120_000);

  test('when the receipt was forged, then import-receipt exits 1 with its code and the queue keeps its events; the genuine one is then imported (exit 3 when it brings no license)', async () => {
    await reported(['ev-1']);
    expect((await cli(['export-usage', '--queue-dir', queueDir, '--out', 'b.jws', '--customer-id', CUSTOMER, '--fingerprint', FP])).code).toBe(0);
    const text = fs.readFileSync(path.join(work, 'b.jws'), 'utf8');
    const [, p] = text.trim().split('.');
    const bundle = {
      text,
      header: { alg: 'EdDSA', typ: 'usage-bundle+jws', kid: '' },
      payload: JSON.parse(Buffer.from(p!, 'base64url').toString()),
      digest: bundleDigest(text),
    };
    const claims = receiptClaims(bundle);
    fs.writeFileSync(path.join(work, 'forged.json'), answerJson(await signReceipt(await makeKey('license-k1'), claims), claims, null));
    const forged = await cli(['import-receipt', '--queue-dir', queueDir, '--receipt', 'forged.json', '--trusted-keys', 'license-keys.json']);
    expect(forged.code).toBe(1);
    expect(forged.stderr).toMatch(/ReceiptError BAD_SIGNATURE/);
    const c = new BillingClient({ offline: true, queueDir });
    expect(await c.queued()).toMatchObject({ events: 1 });
    await c.close();

    fs.writeFileSync(
      path.join(work, 'genuine.json'),
      answerJson(await signReceipt(key, claims), claims, null, { code: 'NO_SUBSCRIPTION', message: 'no subscription' }),
    );
    const genuine = await cli(['import-receipt', '--queue-dir', queueDir, '--receipt', 'genuine.json', '--trusted-keys', 'license-keys.json']);
    // Imported, but no new license: exit 3, and why.
    expect(genuine.code).toBe(3);
    expect(genuine.stdout).toContain('1 events acknowledged');
    expect(genuine.stderr).toMatch(/No new license \(the service could not issue one\): NO_SUBSCRIPTION/);
  }, 60_000);

  test('when the queue folder is in use by the running software, then export-usage exits 1 saying so, and writes nothing', async () => {
    await reported(['ev-1']);
    const running = new BillingClient({ offline: true, queueDir });
    await running.queued();
    try {
      const r = await cli(['export-usage', '--queue-dir', queueDir, '--out', 'b.jws', '--customer-id', CUSTOMER, '--fingerprint', FP]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/held by process \d+.*Stop the instance's software first/s);
      expect(fs.existsSync(path.join(work, 'b.jws'))).toBe(false);
    } finally {
      await running.close();
    }
    // Control: stopped, the same command works.
    expect((await cli(['export-usage', '--queue-dir', queueDir, '--out', 'b.jws', '--customer-id', CUSTOMER, '--fingerprint', FP])).code).toBe(0);
  }, 60_000);

  test('when the command line is wrong, then exit 2 with the usage; help exits 0', async () => {
    const none = await cli([]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('Usage: billing-client');
    expect(await cli(['export-usage', '--queue-dir', queueDir])).toMatchObject({ code: 2, stderr: expect.stringContaining('--out is required') });
    expect(await cli(['export-usage', '--queue-dir', queueDir, '--out', 'x', '--bundle', 'y'])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('export-usage does not take --bundle'),
    });
    expect(await cli(['frobnicate'])).toMatchObject({ code: 2, stderr: expect.stringContaining('unknown command frobnicate') });
    expect(await cli(['export-usage', '--nope'])).toMatchObject({ code: 2, stderr: expect.stringContaining("Unknown option '--nope'") });
    expect(await cli(['import-receipt', '--queue-dir', queueDir, '--receipt', 'x'])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--trusted-keys'),
    });
    expect(await cli(['--help'])).toMatchObject({ code: 0, stdout: expect.stringContaining('export-usage') });
  }, 60_000);

  test('when upload-usage has no API key, or a wrong one, then it exits 2 or 1 without printing the key', async () => {
    fs.writeFileSync(path.join(work, 'b.jws'), 'a.b.c\n');
    const missing = await cli(['upload-usage', '--bundle', 'b.jws', '--out', 'a.json'], { BILLING_API_URL: url });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('BILLING_API_KEY');
    const wrong = `cust_${CUSTOMER}_${'w'.repeat(43)}`;
    const refused = await cli(['upload-usage', '--bundle', 'b.jws', '--out', 'a.json'], { BILLING_API_URL: url, BILLING_API_KEY: wrong });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('The service answered 401 UNAUTHORIZED');
    expect(`${refused.stdout}${refused.stderr}`).not.toContain(wrong);
    expect(fs.existsSync(path.join(work, 'a.json'))).toBe(false);
  }, 60_000);
});
