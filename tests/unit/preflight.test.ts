import { runChecks, type Probes } from '../../src/cli/preflight-checks';
import { signKeySet } from '../../src/modules/licenses/key-set';
import { generateSigningKey, parseSigningKeys, publicJwk } from '../../src/modules/licenses/signing-keys';

const good = {
  NODE_ENV: 'production',
  DATABASE_URL: 'postgres://u:p@db:5432/billing',
  ADMIN_API_TOKEN: 'a3f1c9e27b4d8f60c5e1a9b7d3f2e8c4a6b0d9e1f7c3a5b8d2e4f6a0c1b3d5e7',
  STRIPE_SECRET_KEY: 'rk_live_abc123',
  STRIPE_WEBHOOK_SECRET: 'whsec_abc',
  METRICS_TOKEN: 'f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f',
  TRUST_PROXY: '1',
  REDIS_URL: 'redis://redis:6379',
  LICENSE_SIGNING_KEYS: '{"kty":"OKP","crv":"Ed25519","d":"nBdKOX2FAqvI-cZTNdlgYfWITW4rsZfrTaqLakYxlGc","x":"yO4iBXcbZAqpwKMIqBKe4rk962muih682zz3cGCr0Mg"}',
  LICENSE_JWKS_URL: 'https://billing.example.com/.well-known/jwks.json',
  WEBHOOK_SECRETS_KEY: 'abababababababababababababababababababababababababababababababab',
};
const probes = (over: Partial<Probes> = {}): Probes => ({
  migrations: async () => ({ pending: [] }),
  redis: async () => null,
  audit: async () => ({ high: 0 }),
  ...over,
});
const failed = (rs: { ok: boolean; name: string; detail: string }[]) => rs.filter((r) => !r.ok).map((r) => `${r.name}: ${r.detail}`);

test('when everything is in order, then every check passes', async () => {
  expect(failed(await runChecks(good, probes(), 3))).toEqual([]);
});

test('when the configuration is weak, then each problem fails with its fix', async () => {
  const r = await runChecks({ ...good, ADMIN_API_TOKEN: 'short', STRIPE_WEBHOOK_SECRET: '' }, probes(), 1);
  expect(failed(r).join('\n')).toMatch(/ADMIN_API_TOKEN: too short.*openssl rand -hex 32/);
  expect(failed(r).join('\n')).toMatch(/STRIPE_WEBHOOK_SECRET: required/);
});

test.each([
  ['no TLS proxy', { TRUST_PROXY: 'false' }, 3, /behind a TLS proxy/],
  ['a proxy setting that trusts every X-Forwarded-For', { TRUST_PROXY: 'true' }, 1, /TRUST_PROXY: "true" trusts any X-Forwarded-For/],
  ['several instances without Redis', { REDIS_URL: '' }, 3, /shared rate limits: 3 instances without REDIS_URL/],
  ['a test Stripe key', { STRIPE_SECRET_KEY: 'sk_test_123' }, 1, /Stripe key is a live key/],
  ['no metrics token', { METRICS_TOKEN: '' }, 1, /metrics token set/],
  ['debug logs', { LOG_LEVEL: 'debug' }, 1, /log level: LOG_LEVEL=debug: use info/],
  ['not production', { NODE_ENV: 'development' }, 1, /NODE_ENV is production: set NODE_ENV=production/],
])('when there is %s, then that check fails', async (_label, change, instances, pattern) => {
  expect(failed(await runChecks({ ...good, ...change }, probes(), instances)).join('\n')).toMatch(pattern);
});

test('when the database, Redis or npm audit report trouble, then those checks fail', async () => {
  const r = await runChecks(
    good,
    probes({
      migrations: async () => ({ pending: ['20261127000007_create_stripe_events'] }),
      redis: async () => 'ECONNREFUSED',
      audit: async () => ({ high: 2 }),
    }),
    2,
  );
  const text = failed(r).join('\n');
  expect(text).toMatch(/pending: 20261127000007_create_stripe_events; run npm run migrate/);
  expect(text).toMatch(/Redis at REDIS_URL does not answer: ECONNREFUSED/);
  expect(text).toMatch(/2 high or critical advisories/);
});

test('when no license signing key is set, then the configuration fails and names the command that makes one', async () => {
  const { LICENSE_SIGNING_KEYS: _, ...without } = good;
  expect(failed(await runChecks(without, probes(), 3)).join('\n')).toMatch(
    /LICENSE_SIGNING_KEYS: required when NODE_ENV=production \(make one: npm run license-key\)/,
  );
});

test('when signing keys are set, then the check names the signing kid', async () => {
  const r = await runChecks(good, probes(), 3);
  expect(r.find((c) => c.name === 'license signing keys')).toMatchObject({ ok: true, detail: expect.stringMatching(/1 Ed25519 key\(s\); signing with kid /) });
});

test('when LICENSE_KEY_SET is set, then the check names its root and keys, and fails within 30 days of its expiry', async () => {
  const signing = parseSigningKeys(good.LICENSE_SIGNING_KEYS)[0]!;
  const root = generateSigningKey();
  const set = (days: number) => signKeySet(root, [publicJwk(signing)], { issuer: 'billing-service', iat: Math.floor(Date.now() / 1000), days });
  const check = async (env: Record<string, string>) => (await runChecks(env, probes(), 3)).find((r) => r.name === 'license key set (LICENSE_KEY_SET)')!;
  expect(await check(good)).toMatchObject({ ok: true, detail: expect.stringMatching(/^none: instances verify only against license keys built into/) });
  expect(await check({ ...good, LICENSE_KEY_SET: set(365) })).toMatchObject({
    ok: true,
    detail: expect.stringContaining(`signed by root ${root.kid}, lists ${signing.kid}`),
  });
  expect(await check({ ...good, LICENSE_KEY_SET: set(10) })).toMatchObject({ ok: false, detail: expect.stringContaining('sign a new one offline') });
});

test('when webhooks are configured, then the checklist names the secrets keys, fails without one and fails plain-http endpoints', async () => {
  const r = await runChecks({ ...good, WEBHOOK_SECRETS_KEY: `${good.WEBHOOK_SECRETS_KEY},${'cd'.repeat(32)}` }, probes(), 3);
  expect(r.find((c) => c.name === 'webhook secrets key (WEBHOOK_SECRETS_KEY)')).toMatchObject({ ok: true, detail: expect.stringMatching(/^2 key\(s\)/) });
  expect(r.find((c) => c.name === 'webhook endpoints https only')).toMatchObject({ ok: true });
  const { WEBHOOK_SECRETS_KEY: _unset, ...without } = good;
  expect(failed(await runChecks(without, probes(), 3))).toEqual([
    expect.stringMatching(/^configuration valid for production: WEBHOOK_SECRETS_KEY: required when NODE_ENV=production/),
  ]);
  expect(failed(await runChecks({ ...good, WEBHOOK_ALLOW_HTTP: 'true' }, probes(), 3))).toEqual([
    expect.stringMatching(/^webhook endpoints https only: WEBHOOK_ALLOW_HTTP=true/),
  ]);
  expect(failed(await runChecks({ ...good, WEBHOOK_ALLOW_PRIVATE: 'true' }, probes(), 3))).toEqual([
    expect.stringMatching(/^configuration valid for production: WEBHOOK_ALLOW_PRIVATE: must not be true/),
  ]);
});
