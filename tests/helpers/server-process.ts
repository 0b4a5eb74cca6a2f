import { ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';

const root = path.resolve(__dirname, '..', '..');

export interface Running {
  child: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
}

/** The real entry point (src/server.ts) in a child process, with only the settings given. */
export function startServer(env: Record<string, string>): Running {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !/^(DATABASE_URL|ADMIN_API_TOKEN|METRICS_TOKEN|STRIPE_\w+|PORT|DATA_DIR|NODE_ENV|REDIS_URL|RATE_LIMIT_\w+)(_FILE)?$/.test(k),
    ),
  );
  const child = spawn(process.execPath, ['--require', 'tsx/cjs', 'src/server.ts'], {
    cwd: root,
    env: { ...inherited, LOG_PRETTY: 'false', BCRYPT_COST: '4', RATE_LIMIT_ADMIN: '1000/1m', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, out: () => out, exited };
}

export async function waitFor(r: Running, pattern: RegExp, ms = 30_000, from = 0): Promise<void> {
  const end = Date.now() + ms;
  while (!pattern.test(r.out().slice(from))) {
    if (Date.now() > end || r.child.exitCode !== null) throw new Error(`waiting for ${pattern}; output:\n${r.out()}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export function call(port: number, method: string, p: string, headers: Record<string, string> = {}, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: p,
        method,
        headers: { ...headers, ...(body !== undefined ? { 'Content-Length': String(Buffer.byteLength(body)) } : {}) },
      },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
