/**
 * The real entry point in production, given secret files others can read: it refuses to start,
 * naming the file and the fix; with the same files made private it starts (the control).
 */
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { testDatabaseUrl } from '../helpers/test-app';
import { freePort } from '../helpers/server-process';

const root = path.resolve(__dirname, '..', '..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-prod-secrets-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const KEY = '{"kty":"OKP","crv":"Ed25519","d":"nBdKOX2FAqvI-cZTNdlgYfWITW4rsZfrTaqLakYxlGc","x":"yO4iBXcbZAqpwKMIqBKe4rk962muih682zz3cGCr0Mg"}';

/** The service started from `cwd` (where dotenv looks for .env) with only these settings. */
function start(cwd: string, env: Record<string, string>): { out: () => string; exited: Promise<number | null>; kill: () => void } {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) =>
        !/^(DATABASE_URL|ADMIN_API_TOKEN|METRICS_TOKEN|STRIPE_\w+|PORT|DATA_DIR|NODE_ENV|REDIS_URL|RATE_LIMIT_\w+|LICENSE_\w+|TRUST_PROXY)(_FILE)?$/.test(k),
    ),
  );
  const child = spawn(process.execPath, ['--require', require.resolve('tsx/cjs'), path.join(root, 'src/server.ts')], {
    cwd,
    env: { ...inherited, LOG_PRETTY: 'false', BCRYPT_COST: '4', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return { out: () => out, exited: new Promise((r) => child.on('exit', (code) => r(code))), kill: () => child.kill('SIGTERM') };
}

async function production(mode: number, envFileMode: number | null) {
  const cwd = fs.mkdtempSync(path.join(dir, 'run-'));
  const tokenFile = path.join(cwd, 'admin-token');
  fs.writeFileSync(tokenFile, `${randomBytes(32).toString('hex')}\n`);
  fs.chmodSync(tokenFile, mode);
  if (envFileMode !== null) {
    fs.writeFileSync(path.join(cwd, '.env'), `METRICS_TOKEN=${randomBytes(32).toString('hex')}\n`);
    fs.chmodSync(path.join(cwd, '.env'), envFileMode);
  }
  const port = await freePort();
  const r = start(cwd, {
    NODE_ENV: 'production',
    LICENSE_JWKS_URL: 'https://billing.example.com/.well-known/jwks.json',
    WEBHOOK_SECRETS_KEY: 'abababababababababababababababababababababababababababababababab',
    DATABASE_URL: testDatabaseUrl(),
    ADMIN_API_TOKEN_FILE: tokenFile,
    LICENSE_SIGNING_KEYS: KEY,
    STRIPE_ENABLED: 'false',
    TRUST_PROXY: 'loopback',
    MIGRATE_ON_START: 'false',
    PORT: String(port),
    DATA_DIR: cwd,
  });
  return { r, tokenFile, cwd };
}

test('when production is given an admin token file of mode 0644, then it exits 1 naming the file and the fix', async () => {
  const { r, tokenFile } = await production(0o644, null);
  expect(await r.exited).toBe(1);
  expect(r.out()).toContain(`ADMIN_API_TOKEN_FILE: ${tokenFile} can be read or written by group or others (mode 0644): chmod 600 ${tokenFile}`);
  expect(r.out()).not.toContain(fs.readFileSync(tokenFile, 'utf8').trim());
}, 60_000);

test('when production finds a .env others can read, then it exits 1 naming it', async () => {
  const { r, cwd } = await production(0o600, 0o644);
  expect(await r.exited).toBe(1);
  expect(r.out()).toContain(`.env: ${path.join(cwd, '.env')} can be read or written by group or others (mode 0644)`);
}, 60_000);

test('when the same files are private, then production starts (control)', async () => {
  const { r } = await production(0o600, 0o600);
  const end = Date.now() + 60_000;
  while (!/listening/.test(r.out()) && Date.now() < end) await new Promise((res) => setTimeout(res, 100));
  expect(r.out()).toMatch(/listening/);
  r.kill();
  expect(await r.exited).toBe(0);
}, 90_000);
