/**
 * The secret-rotation procedure (docs/SECURITY-SETUP.md) sends SIGHUP to every pod, one still
 * starting included: the signal must not end it, and its reload must run once the service is ready.
 * Start-up is made long on purpose (an embedded PostgreSQL created on a fresh DATA_DIR).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { call, freePort, startServer, waitFor } from '../helpers/server-process';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-hup-'));
fs.chmodSync(dir, 0o755);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Whether the process has a handler for SIGHUP (bit 1 of SigCgt in /proc/<pid>/status). */
function catchesHup(pid: number): boolean {
  const line = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^SigCgt:\s*([0-9a-f]+)$/m);
  return line !== null && (BigInt(`0x${line[1]}`) & 1n) === 1n;
}

test('when SIGHUP arrives during start-up, then the process lives, starts, and reloads its secret files once ready', async () => {
  const tokenFile = path.join(dir, 'admin-token-file');
  const first = randomBytes(32).toString('hex');
  fs.writeFileSync(tokenFile, `${first}\n`, { mode: 0o600 });
  const port = await freePort();
  const r = startServer({ NODE_ENV: 'development', DATA_DIR: dir, PORT: String(port), ADMIN_API_TOKEN_FILE: tokenFile });
  const pid = r.child.pid!;
  try {
    // The handler is in place before the service loads its modules, long before it listens.
    const end = Date.now() + 30_000;
    while (!catchesHup(pid)) {
      if (Date.now() > end || r.child.exitCode !== null) throw new Error(`SIGHUP never caught; output:\n${r.out()}`);
      await new Promise((res) => setTimeout(res, 10));
    }
    expect(r.out()).not.toMatch(/listening/);
    // The rotation: the file is rewritten, then the signal sent (twice, as a retrying script would).
    const second = randomBytes(32).toString('hex');
    fs.writeFileSync(tokenFile, `${second}\n`, { mode: 0o600 });
    process.kill(pid, 'SIGHUP');
    await new Promise((res) => setTimeout(res, 300));
    expect(r.out()).not.toMatch(/listening/);
    process.kill(pid, 'SIGHUP');

    await waitFor(r, /listening/, 90_000);
    await waitFor(r, /secrets reloaded from their files/, 10_000);
    expect(r.out()).toMatch(/a SIGHUP came during start-up/);
    expect(r.out().match(/secrets reloaded from their files/g)).toHaveLength(1);
    expect(r.child.exitCode).toBeNull();
    // The token written during start-up is the one in use; the control: the old one is refused.
    expect((await call(port, 'GET', '/api/customers', { Authorization: `Bearer ${second}` })).status).toBe(200);
    expect((await call(port, 'GET', '/api/customers', { Authorization: `Bearer ${first}` })).status).toBe(401);

    // Once running, a SIGHUP reloads at once, as before.
    const from = r.out().length;
    process.kill(pid, 'SIGHUP');
    await waitFor(r, /secrets reloaded from their files/, 10_000, from);
  } finally {
    r.child.kill('SIGTERM');
    await r.exited;
  }
}, 150_000);
