/**
 * The trust anchor against the real service: the root-signed key set it publishes, key rotation that
 * reaches an SDK holding only the root (no new software), the configured key set served as signed
 * offline, and jwks_url from configuration, never from the request.
 */
import { verify as edVerify, createPublicKey, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { BillingClient, type Jwks } from '../../packages/client';
import { ConfigError, loadConfig } from '../../src/config';
import { signKeySet } from '../../src/modules/licenses/key-set';
import { generateSigningKey, publicJwk } from '../../src/modules/licenses/signing-keys';
import { createHttpServer } from '../../src/http/http-classes';
import { reloadSecrets } from '../../src/secrets-reload';
import { createPlan, subscribe } from '../helpers/factories';
import { createTestApp, type TestApp } from '../helpers/test-app';

const decode = (part: string) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, any>;

/** Checks a compact JWS with node:crypto alone, against a public JWK. */
function verifiesWith(token: string, jwk: { x: string }): boolean {
  const [h, p, s] = token.split('.') as [string, string, string];
  const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: jwk.x }, format: 'jwk' });
  return edVerify(null, Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url'));
}

async function listen(t: TestApp): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createHttpServer(t.express);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

test('when the key set is published, then it is a JWS signed by the root, listing every published key', async () => {
  const t = await createTestApp();
  try {
    const res = await request(t.app).get('/.well-known/license-keys').expect(200);
    expect(res.headers['cache-control']).toBe('public, max-age=300');
    const token = res.body.key_set as string;
    const root = t.c.licenseSigner.rootJwks()!.keys[0]!;
    expect(decode(token.split('.')[0]!)).toEqual({ alg: 'EdDSA', kid: root.kid, typ: 'license-keys+jwt' });
    expect(verifiesWith(token, root)).toBe(true);
    const payload = decode(token.split('.')[1]!);
    expect(payload.keys).toEqual(t.c.licenseSigner.jwks().keys);
    expect(payload.iss).toBe('billing-service');
    expect(payload.exp - payload.iat).toBe(365 * 86_400);
    // Signed by the root, not by the license key.
    expect(verifiesWith(token, t.c.licenseSigner.jwks().keys[0]!)).toBe(false);
  } finally {
    await t.close();
  }
});

test('when the signing key is rotated, then an SDK holding only the root verifies licenses of the new key, with no new software', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-rotation-'));
  const file = path.join(dir, 'keys.json');
  const [old, next] = [generateSigningKey(), generateSigningKey()];
  fs.writeFileSync(file, JSON.stringify(old), { mode: 0o600 });
  const t = await createTestApp({ LICENSE_SIGNING_KEYS_FILE: file });
  const server = await listen(t);
  try {
    const s = await subscribe(t, { plan: await createPlan(t, { entitlements: { features: ['sso'], limits: { instances: 2 } } }) });
    const roots = t.c.licenseSigner.rootJwks() as Jwks;
    const fingerprint = `rot-${randomBytes(6).toString('hex')}`;
    const sdk = () =>
      new BillingClient({
        baseUrl: server.url,
        apiKey: s.customer.apiKey,
        maxRetries: 0,
        license: { fingerprint, dir: path.join(dir, 'instance'), trustedRoots: roots },
      });
    const c = sdk();
    await c.activate();
    const first = await c.getLicense();
    expect([first.kid, first.decision, first.claims.instance]).toEqual([old.kid, 'full', fingerprint]);
    // The key set it accepted is kept beside the license (it is checked against the root again when read).
    expect(fs.readFileSync(path.join(dir, 'instance', 'license-keys.jws'), 'utf8').trim()).toBe(t.c.licenseSigner.keySet());

    fs.writeFileSync(file, JSON.stringify([next, old]));
    const env = { LICENSE_SIGNING_KEYS_FILE: file, NODE_ENV: 'test', DATABASE_URL: t.c.config.databaseUrl!, ADMIN_API_TOKEN: t.adminToken };
    expect(await reloadSecrets(env, t.c.config, t.c, t.c.logger)).toMatchObject({ ok: true });
    const second = await c.getLicense();
    expect([second.kid, second.decision]).toEqual([next.kid, 'full']);
    // A new instance (a restart) that reaches the service starts from the kept key set.
    expect((await sdk().getLicense()).kid).toBe(next.kid);
  } finally {
    await server.close();
    await t.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('when LICENSE_KEY_SET is configured, then it is served as signed offline, and one that omits the signing key is refused at start', async () => {
  const [signing, root, other] = [generateSigningKey(), generateSigningKey(), generateSigningKey()];
  const keySet = signKeySet(root, [publicJwk(signing)], { issuer: 'billing-service', iat: Math.floor(Date.now() / 1000), days: 30 });
  const t = await createTestApp({ LICENSE_SIGNING_KEYS: JSON.stringify(signing), LICENSE_KEY_SET: keySet });
  try {
    expect((await request(t.app).get('/.well-known/license-keys').expect(200)).body).toEqual({ key_set: keySet });
    expect(t.c.licenseSigner.rootJwks()).toBeNull();
  } finally {
    await t.close();
  }
  const base = { NODE_ENV: 'test', LICENSE_SIGNING_KEYS: JSON.stringify(other), LICENSE_KEY_SET: keySet };
  expect(() => loadConfig(base)).toThrow(ConfigError);
  expect(() => loadConfig(base)).toThrow(/LICENSE_KEY_SET: does not list the signing key/);
  expect(() => loadConfig({ ...base, LICENSE_KEY_SET: 'not.a.jws!' })).toThrow(/LICENSE_KEY_SET: is not a compact JWS/);
  // A private key in the set is refused: what is published is public.
  const leaky = signKeySet(root, [{ ...publicJwk(signing), d: signing.d } as never], { issuer: 'billing-service', iat: 1, days: 30 });
  expect(() => loadConfig({ ...base, LICENSE_SIGNING_KEYS: JSON.stringify(signing), LICENSE_KEY_SET: leaky })).toThrow(/key 1 is not an Ed25519 public key/);
});

test('when production has no LICENSE_KEY_SET, then nothing is served at /.well-known/license-keys (404)', async () => {
  const t = await createTestApp({
    NODE_ENV: 'production',
    LICENSE_SIGNING_KEYS: JSON.stringify(generateSigningKey()),
    LICENSE_JWKS_URL: 'https://billing.example.com/.well-known/jwks.json',
    WEBHOOK_SECRETS_KEY: 'abababababababababababababababababababababababababababababababab',
    STRIPE_ENABLED: 'false',
  });
  try {
    const res = await request(t.app).get('/.well-known/license-keys');
    expect([res.status, res.body.error.code]).toEqual([404, 'NOT_FOUND']);
  } finally {
    await t.close();
  }
});

test('when a request names another Host, then jwks_url is still the configured one', async () => {
  const url = 'https://billing.example.com/.well-known/jwks.json';
  const t = await createTestApp({ LICENSE_JWKS_URL: url });
  try {
    const s = await subscribe(t);
    for (const host of ['evil.example', 'localhost:1']) {
      const res = await request(t.app)
        .get('/api/licenses')
        .set('Host', host)
        .set('X-Forwarded-Host', 'evil.example')
        .set('X-API-Key', s.customer.apiKey)
        .expect(200);
      expect(res.body.jwks_url).toBe(url);
    }
  } finally {
    await t.close();
  }
});
