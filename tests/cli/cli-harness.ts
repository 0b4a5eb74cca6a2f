import { spawn } from 'node:child_process';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createTestApp, type TestApp } from '../helpers/test-app';
import { runCli } from '../../src/cli/admin/run';

const root = path.resolve(__dirname, '..', '..');

export interface Service {
  t: TestApp;
  url: string;
  close(): Promise<void>;
}

/** The real app on 127.0.0.1 and a free port, for the CLI to call over HTTP. */
export async function startService(env: Record<string, string> = {}): Promise<Service> {
  const t = await createTestApp(env);
  const server: Server = await new Promise((resolve) => {
    const s = t.app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  return {
    t,
    url: `http://127.0.0.1:${port}`,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await t.close();
    },
  };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The command functions in this process, with captured output. */
export async function cli(
  argv: string[],
  o: { env?: Record<string, string | undefined>; stderrIsTTY?: boolean; fetch?: typeof fetch; stdin?: string } = {},
): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, {
    io: {
      stdout: { write: (s: string) => (stdout += s) },
      stderr: { write: (s: string) => (stderr += s) },
      stderrIsTTY: o.stderrIsTTY ?? false,
      stdoutIsTTY: false,
      columns: 100,
      env: o.env ?? {},
      readStdin: () => Promise.resolve(o.stdin ?? ''),
    },
    fetch: o.fetch,
  });
  return { code, stdout, stderr };
}

/** The CLI as a user runs it: its entry point in a child process (through tsx), with only the environment given. */
export function cliProcess(argv: string[], env: Record<string, string>): Promise<CliResult> {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(ADMIN_API_TOKEN|BILLING_API_URL)(_FILE)?$/.test(k)));
  const child = spawn(process.execPath, ['--require', 'tsx/cjs', 'src/cli/billing-admin.ts', ...argv], {
    cwd: root,
    env: { ...inherited, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr })));
}

/** The service's own answer to a request, for comparing with what --json printed. */
export async function serviceJson(s: Service, path: string): Promise<unknown> {
  const res = await fetch(`${s.url}${path}`, { headers: { authorization: `Bearer ${s.t.adminToken}` } });
  return res.json();
}
