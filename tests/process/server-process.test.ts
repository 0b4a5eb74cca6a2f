/**
 * The real entry point in a child process: refusal to start, the development admin token,
 * the embedded PostgreSQL, and graceful shutdown with a request in flight.
 */
import { ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { testDatabaseUrl } from '../helpers/test-app';

const root = path.resolve(__dirname, '..', '..');
const children: ChildProcess[] = [];
afterAll(() => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL')));

interface Running {
  child: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
}

function startServer(env: Record<string, string>): Running {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^(DATABASE_URL|ADMIN_API_TOKEN|PORT|DATA_DIR|NODE_ENV|REDIS_URL|RATE_LIMIT_\w+)$/.test(k)),
  );
  const child = spawn(process.execPath, ['--require', 'tsx/cjs', 'src/server.ts'], {
    cwd: root,
    // Memory-only limits, raised: counters in a shared Redis would outlive the run.
    env: { ...inherited, LOG_PRETTY: 'false', BCRYPT_COST: '4', RATE_LIMIT_ADMIN: '1000/1m', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, out: () => out, exited };
}

async function waitFor(r: Running, pattern: RegExp, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pattern.test(r.out())) {
    if (Date.now() > end || r.child.exitCode !== null) throw new Error(`waiting for ${pattern}; output:\n${r.out()}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function get(port: number, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: p }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      })
      .on('error', reject);
  });
}

const tmpDir = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-proc-'));
  fs.chmodSync(dir, 0o755); // the embedded server may run as the postgres user
  return dir;
};

describe('refusing to start', () => {
  test('when production has no DATABASE_URL, no admin token and no license signing key, then it exits 1 naming each', async () => {
    const r = startServer({ NODE_ENV: 'production' });
    expect(await r.exited).toBe(1);
    expect(r.out()).toMatch(/DATABASE_URL: required when NODE_ENV=production/);
    expect(r.out()).toMatch(/ADMIN_API_TOKEN: required/);
    expect(r.out()).toMatch(/LICENSE_SIGNING_KEYS: required when NODE_ENV=production \(make one: npm run license-key\)/);
  });

  test('when production has a weak admin token, then it exits 1 without echoing the token', async () => {
    const r = startServer({ NODE_ENV: 'production', DATABASE_URL: testDatabaseUrl(), ADMIN_API_TOKEN: 'hunter2hunter2' });
    expect(await r.exited).toBe(1);
    expect(r.out()).toMatch(/ADMIN_API_TOKEN: too short/);
    expect(r.out()).not.toContain('hunter2');
  });
});

describe('running', () => {
  test('when started in development without a token, then one is generated, saved 0600 and printed only the first time', async () => {
    const dataDir = tmpDir();
    const port = await freePort();
    const env = { NODE_ENV: 'development', DATABASE_URL: testDatabaseUrl(), DATA_DIR: dataDir, PORT: String(port) };
    const first = startServer(env);
    await waitFor(first, /listening/);
    const file = path.join(dataDir, 'admin-token');
    const token = fs.readFileSync(file, 'utf8').trim();
    expect(token).toMatch(/^[0-9a-f]{64}$/);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(first.out()).toContain(token);
    expect(first.out()).toContain(file);
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);

    const second = startServer(env);
    await waitFor(second, /listening/);
    expect(second.out()).not.toContain(token);
    expect(second.out()).toContain(file);
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  });

  test('when SIGTERM arrives during a request, then the request completes and the process exits 0', async () => {
    const port = await freePort();
    const token = 'f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f';
    const r = startServer({ NODE_ENV: 'test', DATABASE_URL: testDatabaseUrl(), ADMIN_API_TOKEN: token, PORT: String(port), DATA_DIR: tmpDir() });
    await waitFor(r, /listening/);
    const body = JSON.stringify({ email: `inflight-${Date.now()}@example.com`, company_name: 'In flight' });
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          path: '/api/customers',
          method: 'POST',
          headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode!));
        },
      );
      req.on('error', reject);
      req.write(body.slice(0, 10)); // the request is now in flight, its body unfinished
      setTimeout(() => {
        r.child.kill('SIGTERM');
        setTimeout(() => req.end(body.slice(10)), 300);
      }, 200);
    });
    expect(status).toBe(201);
    expect(await r.exited).toBe(0);
    expect(r.out()).toMatch(/shutting down/);
    expect(r.out()).toMatch(/"msg":"stopped"/);
  });

  test('when started without DATABASE_URL, then it runs on an embedded PostgreSQL under DATA_DIR and stops it on exit', async () => {
    const dataDir = tmpDir();
    const port = await freePort();
    const r = startServer({ NODE_ENV: 'development', DATA_DIR: dataDir, PORT: String(port) });
    await waitFor(r, /listening/, 60_000);
    const ready = await get(port, '/ready');
    expect(ready.status).toBe(200);
    expect(fs.existsSync(path.join(dataDir, 'postgres', 'PG_VERSION'))).toBe(true);
    r.child.kill('SIGTERM');
    expect(await r.exited).toBe(0);
    expect(r.out()).toMatch(/embedded PostgreSQL stopped/);
    expect(fs.existsSync(path.join(dataDir, 'postgres', 'postmaster.pid'))).toBe(false);
  }, 90_000);
});
