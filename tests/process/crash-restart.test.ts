/**
 * Start-up after a crash, the way a new user meets it: the service is killed (SIGKILL, a power cut
 * of the process) while its embedded PostgreSQL runs, and `npm start` is run again. The leftover
 * PostgreSQL (its postmaster.pid under DATA_DIR) is stopped cleanly and started again, with a
 * message that says so; a start-up failure names its cause, never `undefined`.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { call, freePort, type Running, startServer, waitFor } from '../helpers/server-process';

const running: Running[] = [];
afterAll(async () => {
  for (const r of running) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
});

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-crash-'));
fs.chmodSync(dataDir, 0o755); // the embedded server may run as the postgres user
const pidFile = path.join(dataDir, 'postgres', 'postmaster.pid');
const postmasterPid = () => Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0]);
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    // A zombie has exited: only its parent has not collected it yet.
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

async function start(): Promise<{ r: Running; port: number }> {
  const port = await freePort();
  const r = startServer({ NODE_ENV: 'development', DATA_DIR: dataDir, PORT: String(port) });
  running.push(r);
  await waitFor(r, /listening/, 90_000);
  return { r, port };
}

test('when the service is SIGKILLed with its embedded PostgreSQL running, then the next start stops the leftover cleanly and runs, three times in a row', async () => {
  let { r, port } = await start();
  for (let crash = 1; crash <= 3; crash++) {
    expect((await call(port, 'GET', '/ready')).status).toBe(200);
    const leftover = postmasterPid();
    r.child.kill('SIGKILL');
    await r.exited;
    // The crash left PostgreSQL running: what the next start finds.
    expect(alive(leftover)).toBe(true);

    ({ r, port } = await start());
    expect(r.out()).toContain(`embedded PostgreSQL left running by an earlier run (pid ${leftover}) was stopped cleanly`);
    expect(r.out()).not.toMatch(/undefined/);
    expect(alive(leftover)).toBe(false);
    expect(postmasterPid()).not.toBe(leftover);
    expect((await call(port, 'GET', '/ready')).status).toBe(200);
  }
  r.child.kill('SIGTERM');
  expect(await r.exited).toBe(0);
  expect(fs.existsSync(pidFile)).toBe(false);
}, 300_000);

test('when the embedded PostgreSQL cannot start, then the failure names its cause, not `undefined`', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-badpg-'));
  fs.chmodSync(dir, 0o755);
  // A port PostgreSQL cannot listen on: something else holds it.
  const holder = net.createServer().listen(0, '127.0.0.1');
  await new Promise((res) => holder.once('listening', res));
  const taken = (holder.address() as net.AddressInfo).port;
  try {
    const r = startServer({ NODE_ENV: 'development', DATA_DIR: dir, PORT: String(await freePort()), EMBEDDED_PG_PORT: String(taken) });
    running.push(r);
    expect(await r.exited).toBe(1);
    expect(r.out()).toMatch(/Failed to start: .*embedded PostgreSQL/);
    expect(r.out()).toMatch(/could not bind|Address already in use/i);
    expect(r.out()).not.toMatch(/Failed to start: undefined/);
  } finally {
    holder.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);

afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));
