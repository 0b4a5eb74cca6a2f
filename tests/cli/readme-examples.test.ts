/**
 * The CLI as documented: the README's example block runs as written, line after line, in bash, with
 * `billing-admin` on the PATH (the real entry point in its own process), against a running service
 * (on a database of its own: `keys rotate-all` acts on every customer). The examples in --help run
 * too, and every command's --help answers.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createIsolatedTestApp } from '../helpers/fresh-database';
import { cli } from './cli-harness';
import { buildProgram } from '../../src/cli/admin/run';
import type { CommandUnknownOpts as Command } from '@commander-js/extra-typings';

const root = path.resolve(__dirname, '..', '..');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-readme-'));
const bin = path.join(work, 'bin');
let iso: Awaited<ReturnType<typeof createIsolatedTestApp>>;
let server: Server;
let env: Record<string, string>;

beforeAll(async () => {
  iso = await createIsolatedTestApp('readme_cli');
  server = await new Promise((resolve) => {
    const s = iso.t.app.listen(0, '127.0.0.1', () => resolve(s));
  });
  env = { BILLING_API_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, ADMIN_API_TOKEN: iso.t.adminToken };
  // `npm link` puts billing-admin on the PATH; here, the same entry point through tsx.
  fs.mkdirSync(bin);
  fs.writeFileSync(
    path.join(bin, 'billing-admin'),
    `#!/bin/sh\nexec "${process.execPath}" --require "${require.resolve('tsx/cjs')}" "${path.join(root, 'src/cli/billing-admin.ts')}" "$@"\n`,
    { mode: 0o755 },
  );
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await iso.close();
  fs.rmSync(work, { recursive: true, force: true });
});

/** The README's block of CLI examples (the one that starts with "# Customers."). */
function readmeExamples(): string {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const start = readme.indexOf('```sh\n# Customers.');
  expect(start).toBeGreaterThan(0);
  return readme.slice(start + '```sh\n'.length, readme.indexOf('```', start + 5));
}

function bash(script: string, cwd: string): Promise<{ code: number | null; out: string }> {
  // Each line as written; the first that fails stops the run and is named.
  const full = `set -eo pipefail\ntrap 'echo "FAILED (exit $?): $BASH_COMMAND" >&2' ERR\n${script}`;
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(ADMIN_API_TOKEN|BILLING_API_URL)(_FILE)?$/.test(k)));
  const child = spawn('bash', ['-c', full], { cwd, env: { ...inherited, ...env, PATH: `${bin}:${process.env.PATH}` }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, out })));
}

test('when the README’s CLI examples are run as written, one after another, then every line succeeds', async () => {
  const dir = fs.mkdtempSync(path.join(work, 'run-'));
  const old = process.umask(0o022);
  let r: { code: number | null; out: string };
  try {
    r = await bash(readmeExamples(), dir);
  } finally {
    process.umask(old);
  }
  if (r.code !== 0) throw new Error(`the README's examples stopped:\n${r.out}`);
  // What the examples say they leave behind: key and license files only their owner can read.
  for (const f of ['acme-dev.key', 'site-b.key', 'new-keys.tsv', 'build-box-02.license']) {
    expect(fs.statSync(path.join(dir, f)).mode & 0o777).toBe(0o600);
  }
  expect(fs.readFileSync(path.join(dir, 'usage.csv'), 'utf8')).toMatch(/^customer_id,|metric/);
  expect(r.out).toMatch(/usage from 2026-11-15T00:00:00\.000Z to 2026-12-15T00:00:00\.000Z/);
  const customer = await iso.t.db('customers').where({ email: 'ops@acme.example' }).first();
  expect(customer?.status).toBe('deleted');
}, 300_000);

describe('what --help says', () => {
  const commands = (c: Command, prefix: string[] = []): string[][] => [prefix, ...c.commands.flatMap((s) => commands(s, [...prefix, s.name()]))];
  const program = buildProgram({
    io: { stdout: { write: () => 0 }, stderr: { write: () => 0 }, stderrIsTTY: false, stdoutIsTTY: false, env: {}, readStdin: async () => '' },
  });

  test('when --help is asked of any command, then it answers and exits 0', async () => {
    for (const words of commands(program)) {
      const r = await cli([...words, '--help']);
      expect({ words, code: r.code }).toEqual({ words, code: 0 });
      expect(r.stdout).toMatch(/^Usage: billing-admin/);
    }
  });

  test('when a command is unknown or incomplete, then it exits 64, --help or not', async () => {
    for (const argv of [['nosuch'], ['nosuch', '--help'], ['keys', 'nosuch'], ['keys', 'nosuch', '--help'], ['keys'], ['licenses'], ['customers']]) {
      const r = await cli(argv, { env });
      expect({ argv, code: r.code }).toEqual({ argv, code: 64 });
    }
  });

  test('when the examples in the main --help are run as written, then they succeed', async () => {
    const help = await cli(['--help']);
    const examples = help.stdout
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => /(^|\$\()billing-admin /.test(l));
    expect(examples.length).toBeGreaterThanOrEqual(2);
    const r = await bash(examples.join('\n'), fs.mkdtempSync(path.join(work, 'help-')));
    if (r.code !== 0) throw new Error(`the --help examples stopped:\n${r.out}`);
  }, 60_000);
});

describe('dates and periods', () => {
  test('when audit is given a date, a date-time without offset, or one with an offset, then each is accepted; a day that does not exist is refused', async () => {
    for (const from of ['2026-11-01', '2026-11-01T09:30', '2026-11-01T09:30:00+01:00']) {
      const r = await cli(['audit', '--from', from, '--limit', '1'], { env });
      expect({ from, code: r.code, stderr: r.stderr }).toMatchObject({ from, code: 0 });
    }
    const bad = await cli(['audit', '--from', '2026-02-30'], { env });
    expect(bad.code).toBe(64);
    expect(bad.stderr).toMatch(/must be a date/);
  });

  test('when usage report is given --from only, then the period ends a month later, as its help says', async () => {
    const r = await cli(['--json', 'usage', 'report', '--from', '2026-11-15'], { env });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ from: '2026-11-15T00:00:00.000Z', to: '2026-12-15T00:00:00.000Z' });
    const help = await cli(['usage', 'report', '--help']);
    expect(help.stdout).toMatch(/a month after --from/);
  });

  test('when customers list is given --email, then it finds the whole address in any case, as its help says', async () => {
    const address = `Mixed.Case-${Date.now()}@Example.com`;
    expect((await cli(['customers', 'create', '--email', address, '--company', 'X', '--output', path.join(work, `k-${Date.now()}`)], { env })).code).toBe(0);
    const found = await cli(['--json', 'customers', 'list', '--email', address.toLowerCase()], { env });
    expect((JSON.parse(found.stdout) as { data: { email: string }[] }).data.map((c) => c.email)).toEqual([address]);
    const help = await cli(['customers', 'list', '--help']);
    expect(help.stdout.replace(/\s+/g, ' ')).toMatch(/the whole address, any case/);
  });
});
