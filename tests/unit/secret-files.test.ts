/**
 * Secret files readable by anyone but their owner: production refuses to start on them and
 * preflight fails, naming the file, its mode and the fix, never the contents. Outside production
 * they are accepted (a developer's checkout), and a file of mode 0600 or 0400 always is.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runChecks, type Probes } from '../../src/cli/preflight-checks';
import { ConfigError, loadConfig } from '../../src/config';
import { loadOrCreateDevAdminToken } from '../../src/dev-admin-token';
import { envFileProblem } from '../../src/lib/secret-file';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-secret-files-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const production = {
  NODE_ENV: 'production',
  LICENSE_JWKS_URL: 'https://billing.example.com/.well-known/jwks.json',
  WEBHOOK_SECRETS_KEY: 'abababababababababababababababababababababababababababababababab',
  DATABASE_URL: 'postgres://u:p@db:5432/billing',
  STRIPE_ENABLED: 'false',
  TRUST_PROXY: '1',
  LICENSE_SIGNING_KEYS: '{"kty":"OKP","crv":"Ed25519","d":"nBdKOX2FAqvI-cZTNdlgYfWITW4rsZfrTaqLakYxlGc","x":"yO4iBXcbZAqpwKMIqBKe4rk962muih682zz3cGCr0Mg"}',
};
const probes: Probes = { migrations: async () => ({ pending: [] }), redis: async () => null, audit: async () => ({ high: 0 }) };

function secretFile(mode: number, text = randomBytes(32).toString('hex')): { file: string; text: string } {
  const file = path.join(dir, `secret-${randomBytes(4).toString('hex')}`);
  fs.writeFileSync(file, `${text}\n`);
  fs.chmodSync(file, mode);
  return { file, text };
}

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
}

describe.each([0o644, 0o640, 0o604, 0o660, 0o606])('a secret file of mode %o', (mode) => {
  test('when production reads the admin token from it, then it refuses to start, naming the file, its mode and the fix, not the token', () => {
    const { file, text } = secretFile(mode);
    const found = problems({ ...production, ADMIN_API_TOKEN_FILE: file });
    expect(found).toEqual([`ADMIN_API_TOKEN_FILE: ${file} can be read or written by group or others (mode 0${mode.toString(8)}): chmod 600 ${file}`]);
    expect(found.join()).not.toContain(text);
  });

  test('when preflight checks it, then the configuration check fails with the same words', async () => {
    const { file } = secretFile(mode);
    const results = await runChecks({ ...production, ADMIN_API_TOKEN_FILE: file }, probes, 1);
    const failed = results.filter((r) => !r.ok).map((r) => r.detail);
    expect(failed.join('\n')).toContain(`ADMIN_API_TOKEN_FILE: ${file} can be read or written by group or others`);
  });

  test('when outside production, then it is accepted', () => {
    const { file } = secretFile(mode);
    expect(problems({ NODE_ENV: 'development', ADMIN_API_TOKEN_FILE: file })).toEqual([]);
  });
});

test('when every secret file is readable by its owner only (0600, 0400), then production accepts them all (control)', async () => {
  const env = {
    ...production,
    ADMIN_API_TOKEN_FILE: secretFile(0o600).file,
    METRICS_TOKEN_FILE: secretFile(0o400).file,
    LICENSE_SIGNING_KEYS_FILE: secretFile(0o400, production.LICENSE_SIGNING_KEYS).file,
    DATABASE_URL_FILE: secretFile(0o600, production.DATABASE_URL).file,
  };
  const { LICENSE_SIGNING_KEYS: _k, DATABASE_URL: _d, ...rest } = env;
  expect(problems(rest)).toEqual([]);
  const results = await runChecks(rest, probes, 1);
  expect(results.filter((r) => r.name === 'configuration valid for production').every((r) => r.ok)).toBe(true);
});

test('when several secret files are open to others, then each is named', () => {
  const env = {
    ...production,
    ADMIN_API_TOKEN_FILE: secretFile(0o600).file,
    METRICS_TOKEN_FILE: secretFile(0o644).file,
    LICENSE_SIGNING_KEYS_FILE: secretFile(0o644, production.LICENSE_SIGNING_KEYS).file,
  };
  const { LICENSE_SIGNING_KEYS: _k, ...rest } = env;
  const found = problems(rest);
  expect(found).toHaveLength(2);
  expect(found.join('\n')).toMatch(/^METRICS_TOKEN_FILE: .* \(mode 0644\)/m);
  expect(found.join('\n')).toMatch(/^LICENSE_SIGNING_KEYS_FILE: .* \(mode 0644\)/m);
});

test('when the development admin token file under DATA_DIR is readable by others, then it is refused with the fix', () => {
  const dataDir = fs.mkdtempSync(path.join(dir, 'data-'));
  const first = loadOrCreateDevAdminToken(dataDir);
  expect(first.created).toBe(true);
  expect(loadOrCreateDevAdminToken(dataDir)).toMatchObject({ created: false, token: first.token });
  fs.chmodSync(first.file, 0o644);
  expect(() => loadOrCreateDevAdminToken(dataDir)).toThrow(`${first.file} can be read or written by group or others (mode 0644): chmod 600 ${first.file}`);
});

test('when the .env file that may hold every secret is readable by others, then it is named with the fix; private or absent, nothing is said', () => {
  const envFile = path.join(dir, '.env');
  fs.writeFileSync(envFile, 'ADMIN_API_TOKEN=x\n');
  fs.chmodSync(envFile, 0o644);
  expect(envFileProblem(envFile)).toBe(`.env: ${envFile} can be read or written by group or others (mode 0644): chmod 600 ${envFile}`);
  fs.chmodSync(envFile, 0o600);
  expect(envFileProblem(envFile)).toBeNull();
  expect(envFileProblem(path.join(dir, 'no-such-file'))).toBeNull();
});
