import { execFileSync } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, verify as edVerify } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { calculateJwkThumbprint } from 'jose';
import { loadConfig } from '../../src/config';
import { configProblems } from '../helpers/config-problems';
import { jwkThumbprint } from '../../src/modules/licenses/signing-keys';

const strong = 'a3f1c9e27b4d8f60c5e1a9b7d3f2e8c4a6b0d9e1f7c3a5b8d2e4f6a0c1b3d5e7';
const prod = {
  NODE_ENV: 'production',
  DATABASE_URL: 'postgres://u:p@db:5432/billing',
  STRIPE_ENABLED: 'false',
  ADMIN_API_TOKEN: strong,
  LICENSE_JWKS_URL: 'https://billing.example.com/.well-known/jwks.json',
  WEBHOOK_SECRETS_KEY: 'abababababababababababababababababababababababababababababababab',
};

const ed25519 = () => generateKeyPairSync('ed25519').privateKey;
const jwk = () => ed25519().export({ format: 'jwk' }) as { kty: string; crv: string; d: string; x: string };
const pem = () => ed25519().export({ format: 'pem', type: 'pkcs8' }) as string;

const problems = configProblems;

describe('LICENSE_SIGNING_KEYS', () => {
  test('when production has no signing key, then it refuses to start and says how to make one', () => {
    expect(problems(prod)).toMatch(/LICENSE_SIGNING_KEYS: required when NODE_ENV=production \(make one: npm run license-key\)/);
  });

  test('when one JWK without a kid is given, then its kid is the RFC 7638 thumbprint', () => {
    const k = jwk();
    const c = loadConfig({ ...prod, LICENSE_SIGNING_KEYS: JSON.stringify(k) });
    expect(c.license.signingKeys).toEqual([{ kty: 'OKP', crv: 'Ed25519', d: k.d, x: k.x, kid: jwkThumbprint(k.x) }]);
  });

  test('when a JSON array of JWKs (with and without kid, x optional) is given, then every key is kept in order', () => {
    const [a, b] = [jwk(), jwk()];
    const c = loadConfig({
      ...prod,
      LICENSE_SIGNING_KEYS: JSON.stringify([
        { ...b, kid: 'next-2026' },
        { kty: a.kty, crv: a.crv, d: a.d },
      ]),
    });
    expect(c.license.signingKeys.map((k) => k.kid)).toEqual(['next-2026', jwkThumbprint(a.x)]);
    expect(c.license.signingKeys[1]!.x).toBe(a.x);
  });

  test('when PEM blocks are given, then each is a key', () => {
    const c = loadConfig({ ...prod, LICENSE_SIGNING_KEYS: `${pem()}\n${pem()}` });
    expect(c.license.signingKeys).toHaveLength(2);
  });

  test.each([
    ['a public key only', () => JSON.stringify({ ...jwk(), d: undefined }), /no private part/],
    ['an RSA key', () => JSON.stringify({ kty: 'RSA', n: 'x', e: 'AQAB', d: 'secretvalue' }), /not an Ed25519 key/],
    ['an x of another key', () => JSON.stringify({ ...jwk(), x: jwk().x }), /"x" does not belong to "d"/],
    ['a d that is no key', () => JSON.stringify({ kty: 'OKP', crv: 'Ed25519', d: 'secretvalue' }), /"d" is not a valid Ed25519 private key/],
    [
      'two keys with one kid',
      () =>
        JSON.stringify([
          { ...jwk(), kid: 'k' },
          { ...jwk(), kid: 'k' },
        ]),
      /share the kid "k"/,
    ],
    ['text that is neither', () => 'secretvalue', /JWK object, a JSON array of JWKs, or PEM/],
    [
      'an RSA PEM',
      () => generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
      /PEM block 1 is not an Ed25519/,
    ],
  ])('when it holds %s, then the configuration is refused without echoing the key', (_label, value, message) => {
    const v = value();
    const text = problems({ ...prod, LICENSE_SIGNING_KEYS: v });
    expect(text).toMatch(message);
    expect(text).not.toContain('secretvalue');
    const d = /"d":"([^"]+)"/.exec(v)?.[1];
    if (d) expect(text).not.toContain(d);
  });
});

describe('license durations', () => {
  test('when LICENSE_TTL is unset or given as d, h or m, then it is seconds', () => {
    expect(loadConfig({}).license).toMatchObject({
      ttlSeconds: 7 * 86_400,
      graceDays: 14,
      heartbeatDays: 14,
      issuer: 'billing-service',
      defaultPlan: undefined,
    });
    expect(loadConfig({ LICENSE_TTL: '12h' }).license.ttlSeconds).toBe(43_200);
    expect(loadConfig({ LICENSE_TTL: '30m' }).license.ttlSeconds).toBe(1_800);
  });

  test.each(['7', '0d', '1w', '-1d', '366d', '7 d'])('when LICENSE_TTL is %s, then it is refused', (v) => {
    expect(problems({ LICENSE_TTL: v })).toMatch(/LICENSE_TTL: must look like 7d, 12h or 30m/);
  });
});

test('when npm run license-key prints a key, then it is a valid LICENSE_SIGNING_KEYS with its kid', () => {
  const root = path.resolve(__dirname, '../..');
  const out = execFileSync(process.execPath, ['--require', 'tsx/cjs', 'src/cli/license-key.ts'], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const printed = JSON.parse(out) as { kid: string; x: string };
  expect(printed.kid).toBe(jwkThumbprint(printed.x));
  expect(loadConfig({ ...prod, LICENSE_SIGNING_KEYS: out }).license.signingKeys[0]!.kid).toBe(printed.kid);
});

test('when the vendor runs license-key root, public and sign-key-set, then the signed set is a valid LICENSE_KEY_SET that the root verifies', () => {
  const root = path.resolve(__dirname, '../..');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'license-key-cli-'));
  const run = (args: string[], env: Record<string, string> = {}) =>
    execFileSync(process.execPath, ['--require', 'tsx/cjs', 'src/cli/license-key.ts', ...args], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  try {
    const signing = run([]);
    const rootKey = run(['root']);
    fs.writeFileSync(path.join(dir, 'root.jwk'), rootKey);
    // What the software embeds: public keys only.
    const published = JSON.parse(run(['public'], { LICENSE_SIGNING_KEYS: signing })) as { keys: Record<string, unknown>[] };
    expect(published.keys).toEqual([expect.objectContaining({ kid: JSON.parse(signing).kid, x: JSON.parse(signing).x })]);
    expect(published.keys.every((k) => !('d' in k))).toBe(true);
    fs.writeFileSync(path.join(dir, 'public.json'), JSON.stringify(published));
    // Signed where the root is kept, from the public keys alone.
    const keySet = run(['sign-key-set', '--root', path.join(dir, 'root.jwk'), '--keys', path.join(dir, 'public.json'), '--days', '30']).trim();
    const c = loadConfig({ ...prod, LICENSE_SIGNING_KEYS: signing, LICENSE_KEY_SET: keySet });
    expect(c.license.keySet).toMatchObject({ rootKid: JSON.parse(rootKey).kid, keys: published.keys });
    expect(c.license.keySet!.exp - c.license.keySet!.iat).toBe(30 * 86_400);
    const [h, p, s] = keySet.split('.') as [string, string, string];
    const rootPublic = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: JSON.parse(rootKey).x }, format: 'jwk' });
    expect(edVerify(null, Buffer.from(`${h}.${p}`), rootPublic, Buffer.from(s, 'base64url'))).toBe(true);
    // A root that is also a signing key is refused.
    expect(() => run(['sign-key-set', '--root', path.join(dir, 'root.jwk'), '--keys', path.join(dir, 'root.jwk')])).toThrow();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('when a key has no kid, then its kid is the RFC 7638 thumbprint jose computes', async () => {
  for (let i = 0; i < 5; i++) {
    const k = jwk();
    expect(jwkThumbprint(k.x)).toBe(await calculateJwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x: k.x }, 'sha256'));
    // A control: another key's thumbprint differs.
    expect(jwkThumbprint(jwk().x)).not.toBe(jwkThumbprint(k.x));
  }
});
