/**
 * BillingClient's license calls against a fake of the licenses routes (given as `fetch`): the token
 * verified offline against the keys built into the software (never fetched), the last good license
 * kept on disk and answered while the service is out of reach, the customer pinned from the API key,
 * binding required where a fingerprint is known, activation and its typed 409.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BillingApiError, BillingClient, InstanceLimitReachedError } from '../../packages/client';
import { claims, CUSTOMER, jwksOf, makeKey, sign, type TestKey } from './license-fixtures';

const BASE = 'http://127.0.0.1:9';
const FP = 'instance-0001';
let key: TestKey;
let dir: string;
let down: boolean;
let token: string;
const seen: string[] = [];

const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
const fakeFetch: typeof fetch = async (input, init) => {
  const url = new URL(input instanceof Request ? input.url : String(input));
  seen.push(`${init?.method ?? 'GET'} ${url.pathname}${url.search}`);
  if (down) throw new TypeError('fetch failed');
  if (url.pathname === '/.well-known/jwks.json') return json(200, jwksOf(key));
  if (url.pathname === '/api/licenses') return json(200, { license: token, claims: {}, jwks_url: `${BASE}/.well-known/jwks.json` });
  if (url.pathname === '/api/licenses/activations') {
    const body = JSON.parse(init?.body as string) as { fingerprint: string };
    if (body.fingerprint === 'full-plan-0001')
      return json(409, { error: { code: 'INSTANCE_LIMIT_REACHED', message: 'All 3 instances are active', requestId: 'req-1' } });
    return json(seen.filter((s) => s.startsWith('POST')).length === 1 ? 201 : 200, { activation: { fingerprint: body.fingerprint } });
  }
  return json(404, { error: { code: 'NOT_FOUND', message: 'no route' } });
};

const now = () => Math.floor(Date.now() / 1000);
const API_KEY = `cust_${CUSTOMER}_${'s'.repeat(43)}`;
const client = (license: Record<string, unknown> = {}) =>
  new BillingClient({
    baseUrl: BASE,
    apiKey: API_KEY,
    fetch: fakeFetch,
    maxRetries: 1,
    backoffBaseMs: 5,
    license: { fingerprint: FP, dir, trustedKeys: jwksOf(key), ...license },
  });

beforeAll(async () => (key = await makeKey('k1')));
beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-client-license-'));
  down = false;
  seen.length = 0;
  token = await sign(key, claims({ iat: now(), exp: now() + 3600, valid_until: now() + 86400, instance: FP }));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('licenses through BillingClient', () => {
  test('when the license is fetched, then it is asked for this fingerprint, verified against the built-in keys (no key fetch) and kept on disk', async () => {
    const l = await client().getLicense();
    expect(l).toMatchObject({ offline: false, decision: 'full', claims: { sub: CUSTOMER, instance: FP } });
    expect(seen).toEqual([`GET /api/licenses?fingerprint=${FP}`]);
    expect(fs.existsSync(path.join(dir, 'license.json'))).toBe(true);
    expect(fs.existsSync(path.join(dir, 'license-mark.json'))).toBe(true);
  });

  test('when the service cannot be reached, then the kept license is answered (offline: true), also by a new client', async () => {
    const first = await client().getLicense();
    down = true;
    expect(await client().getLicense()).toMatchObject({ offline: true, decision: 'full', claims: { jti: first.claims.jti } });
    // Keys bundled as a file shipped with the software work the same.
    const file = path.join(dir, 'vendor-keys.json');
    fs.writeFileSync(file, JSON.stringify(jwksOf(key)));
    expect(await client({ trustedKeys: file }).getLicense()).toMatchObject({ offline: true, claims: { jti: first.claims.jti } });
  });

  test('when the service answers a license that does not verify, then it is an error and the kept one is not used instead', async () => {
    await client().getLicense();
    const other = await makeKey('k1');
    token = await sign(other, claims({ iat: now(), exp: now() + 3600, instance: FP }));
    await expect(client().getLicense()).rejects.toMatchObject({ code: 'BAD_SIGNATURE' });
  });

  test('when no trust anchor is configured, then licenses are refused with NO_TRUST_ANCHOR and nothing is fetched or kept; the old key options are a TypeError', async () => {
    const c = client({ trustedKeys: undefined });
    await expect(c.getLicense()).rejects.toMatchObject({ code: 'NO_TRUST_ANCHOR' });
    await expect(c.verifyLicense(token)).rejects.toMatchObject({ code: 'NO_TRUST_ANCHOR' });
    expect(seen.filter((s) => s.includes('well-known'))).toEqual([]);
    expect(fs.existsSync(path.join(dir, 'license.json'))).toBe(false);
    expect(() => client({ jwks: jwksOf(key) })).toThrow(/no longer accepted/);
    expect(() => client({ jwksUrl: `${BASE}/.well-known/jwks.json` })).toThrow(/no longer accepted/);
  });

  test('when another customer’s genuine license is answered, then it is refused by default (the customer pinned from the API key); its own is accepted', async () => {
    token = await sign(key, claims({ sub: '0a1b2c3d-0000-4000-8000-000000000001', iat: now(), exp: now() + 3600, instance: FP }));
    await expect(client().getLicense()).rejects.toMatchObject({ code: 'WRONG_CUSTOMER' });
    token = await sign(key, claims({ iat: now(), exp: now() + 3600, instance: FP }));
    await expect(client().getLicense()).resolves.toMatchObject({ claims: { sub: CUSTOMER } });
  });

  test('when an unbound license is answered to an instance with a fingerprint, then it is refused by default; with requireBinding false it is accepted', async () => {
    token = await sign(key, claims({ iat: now(), exp: now() + 3600 }));
    await expect(client().getLicense()).rejects.toMatchObject({ code: 'WRONG_INSTANCE' });
    expect(fs.existsSync(path.join(dir, 'license.json'))).toBe(false);
    await expect(client({ requireBinding: false }).getLicense()).resolves.toMatchObject({ decision: 'full' });
    // Where the plan limits instances, unbound is refused whatever the option says.
    token = await sign(key, claims({ iat: now() + 1, exp: now() + 3600, entitlements: { features: [], limits: { instances: 3 } } }));
    await expect(client({ requireBinding: false }).getLicense()).rejects.toMatchObject({ code: 'WRONG_INSTANCE' });
  });

  test('when a license bound to another instance is given to verifyLicense, then it is refused', async () => {
    const c = client();
    expect(await c.verifyLicense(token)).toMatchObject({ decision: 'full' });
    const elsewhere = await sign(key, claims({ iat: now(), exp: now() + 3600, instance: 'someone-else' }));
    await expect(c.verifyLicense(elsewhere)).rejects.toMatchObject({ code: 'WRONG_INSTANCE' });
  });

  test('when an instance activates, then 201 is created and 200 already active; a full plan is InstanceLimitReachedError', async () => {
    const c = client();
    expect(await c.activate({ name: 'a' })).toMatchObject({ created: true, activation: { fingerprint: FP } });
    expect(await c.activate()).toMatchObject({ created: false });
    const err = await c.activate({ fingerprint: 'full-plan-0001' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InstanceLimitReachedError);
    expect(err).toBeInstanceOf(BillingApiError);
    expect(err).toMatchObject({ status: 409, code: 'INSTANCE_LIMIT_REACHED', requestId: 'req-1' });
  });
});
