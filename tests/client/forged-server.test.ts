/**
 * A customer's own billing server (a real HTTP server with its own Ed25519 key, its own JWKS and its
 * own "signed" key set) handing the SDK a 10-year enterprise license, issuer, customer and binding
 * all right: refused by default and with every option, and nothing of it kept. The same client
 * against a server holding the vendor's keys is the control.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { BillingClient, isLicenseError, type ClientLicenseOptions } from '../../packages/client';
import { claims, CUSTOMER, ISSUER, jwksOf, makeKey, sign, signKeySet, type TestKey } from './license-fixtures';

const FP = 'instance-forged-01';
const API_KEY = `cust_${CUSTOMER}_${'s'.repeat(43)}`;
const now = () => Math.floor(Date.now() / 1000);

interface FakeService {
  url: string;
  requests: string[];
  close(): Promise<void>;
}

/** A billing service signing with `key` and publishing `jwks` and a key set signed by `root`. */
async function service(key: TestKey, root: TestKey, published: TestKey[]): Promise<FakeService> {
  const requests: string[] = [];
  const iat = now();
  const license = await sign(
    key,
    claims({
      iat,
      exp: iat + 10 * 365 * 86400,
      valid_until: iat + 10 * 365 * 86400,
      instance: FP,
      plan: { code: 'enterprise', name: 'Enterprise' },
      entitlements: { features: ['everything'], limits: { api_calls: null, instances: null } },
    }),
  );
  const keySet = await signKeySet(root, published, { iat });
  let url = '';
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const send = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    const p = new URL(req.url ?? '/', 'http://x').pathname;
    if (p === '/api/licenses') return send(200, { license, claims: {}, jwks_url: `${url}/.well-known/jwks.json` });
    if (p === '/.well-known/jwks.json') return send(200, jwksOf(...published));
    if (p === '/.well-known/license-keys') return send(200, { key_set: keySet });
    if (p === '/api/licenses/activations') return send(201, { activation: { fingerprint: FP } });
    send(404, { error: { code: 'NOT_FOUND', message: 'no route' } });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, requests, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

let vendorKey: TestKey;
let vendorRoot: TestKey;
let forgers: { name: string; svc: FakeService; keySetText: string }[];
let genuine: FakeService;
let dir: string;

beforeAll(async () => {
  vendorKey = await makeKey('vendor-1');
  vendorRoot = await makeKey('vendor-root');
  const own = await makeKey('attacker-1');
  const sameKid = await makeKey('vendor-1'); // the attacker copies the vendor's kid
  const attackerRoot = await makeKey('vendor-root'); // and the root's kid
  forgers = [
    { name: 'its own kid', svc: await service(own, attackerRoot, [own]), keySetText: await signKeySet(attackerRoot, [own]) },
    { name: 'the vendor kid', svc: await service(sameKid, attackerRoot, [sameKid]), keySetText: await signKeySet(attackerRoot, [sameKid]) },
    // Its key set signed with the license key itself, under the root's kid.
    { name: 'a self-signed key set', svc: await service(own, own, [own]), keySetText: await signKeySet(own, [own]) },
  ];
  genuine = await service(vendorKey, vendorRoot, [vendorKey]);
});
afterAll(async () => {
  await Promise.all([...forgers.map((f) => f.svc.close()), genuine.close()]);
});
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-forged-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const client = (baseUrl: string, license: ClientLicenseOptions) =>
  new BillingClient({ baseUrl, apiKey: API_KEY, maxRetries: 0, license: { fingerprint: FP, ...license } });

/** Every way the SDK can be configured, each with a trust anchor of the vendor's. */
function anchoredOptions(forgerUrl: string, carried: string): [string, ClientLicenseOptions][] {
  const keys = jwksOf(vendorKey);
  const roots = jwksOf(vendorRoot);
  return [
    ['trustedKeys', { trustedKeys: keys }],
    ['trustedRoots', { trustedRoots: roots }],
    ['both', { trustedKeys: keys, trustedRoots: roots }],
    ['trustedRoots with the key set URL named', { trustedRoots: roots, keySetUrl: `${forgerUrl}/.well-known/license-keys`, allowInsecureKeySet: true }],
    ['trustedRoots with the key set carried in', { trustedRoots: roots, keySet: carried }],
    ['trustedKeys as a shipped file', { trustedKeys: writeFile('vendor-keys.json', JSON.stringify(keys)) }],
    [
      'every option',
      { trustedKeys: keys, trustedRoots: roots, keySet: carried, customerId: CUSTOMER, issuer: ISSUER, requireBinding: true, clockToleranceSeconds: 300 },
    ],
    ['binding not required', { trustedKeys: keys, trustedRoots: roots, requireBinding: false }],
  ];
}

function writeFile(name: string, text: string): string {
  const p = path.join(os.tmpdir(), `billing-forged-${process.pid}-${name}`);
  fs.writeFileSync(p, text);
  return p;
}

test('when the SDK has no trust anchor, then the forged license is refused (NO_TRUST_ANCHOR) without fetching any key', async () => {
  for (const f of forgers) {
    const before = f.svc.requests.length;
    const err = await client(f.svc.url, { dir })
      .getLicense()
      .catch((e: unknown) => e);
    expect(isLicenseError(err, 'NO_TRUST_ANCHOR')).toBe(true);
    expect(f.svc.requests.slice(before).filter((r) => r.includes('well-known'))).toEqual([]);
  }
  expect(fs.readdirSync(dir)).toEqual([]);
});

test('when the forged server answers, then every configuration refuses its license and keeps nothing of it', async () => {
  for (const f of forgers) {
    for (const [label, options] of anchoredOptions(f.svc.url, f.keySetText)) {
      const d = fs.mkdtempSync(path.join(dir, 'i-'));
      const c = client(f.svc.url, { ...options, dir: d });
      const err = await c.getLicense().catch((e: unknown) => e);
      expect([f.name, label, isLicenseError(err) ? err.code : String(err)]).toEqual([
        f.name,
        label,
        expect.stringMatching(/^(UNKNOWN_KEY|BAD_SIGNATURE|UNTRUSTED_KEY_SET)$/),
      ]);
      // Not kept, no mark moved, and the attacker's key set not stored for later.
      expect([label, fs.readdirSync(d)]).toEqual([label, []]);
      // Verifying the token by hand is refused the same way.
      const token = JSON.parse(await (await fetch(`${f.svc.url}/api/licenses`)).text()).license as string;
      await expect(c.verifyLicense(token)).rejects.toMatchObject({ name: 'LicenseError' });
    }
  }
});

test('when the genuine service answers (control), then every configuration accepts the same kind of license and keeps it', async () => {
  const carried = await signKeySet(vendorRoot, [vendorKey]);
  for (const [label, options] of anchoredOptions(genuine.url, carried)) {
    const d = fs.mkdtempSync(path.join(dir, 'g-'));
    const l = await client(genuine.url, { ...options, dir: d }).getLicense();
    expect([label, l.decision, l.claims.sub]).toEqual([label, 'full', CUSTOMER]);
    expect(fs.existsSync(path.join(d, 'license.json'))).toBe(true);
  }
});
