import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * What a customer instance installs: `npm pack -w packages/client` makes @billing/client, holding the
 * build, its manifest and its README (what npm shows) only; installed into an empty folder it brings jose and nothing else, and
 * loads without any of the service's dependencies.
 */
const root = path.resolve(__dirname, '../..');
const npm = (args: string[], cwd: string) =>
  execFileSync('npm', args, {
    cwd,
    stdio: 'pipe',
    env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' },
  }).toString();
let work: string;

beforeAll(() => (work = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-sdk-pack-'))));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe('@billing/client as a package', () => {
  let tarball: string;

  test('when it is packed, then the tarball holds the build (.js and .d.ts), the manifest and nothing of the sources or the server', () => {
    const out = JSON.parse(npm(['pack', '-w', 'packages/client', '--json', '--pack-destination', work], root)) as {
      filename: string;
      files: { path: string }[];
    }[];
    tarball = path.join(work, out[0]!.filename);
    const files = out[0]!.files.map((f) => f.path);
    expect(files).toContain('package.json');
    expect(files).toContain('dist/index.js');
    expect(files).toContain('dist/index.d.ts');
    expect(files).toContain('dist/billing-client.js');
    expect(files).toContain('dist/cli.js');
    expect(files).toContain('README.md');
    expect(files.filter((f) => !/^dist\/[a-z-]+\.(js|d\.ts)$/.test(f) && f !== 'package.json' && f !== 'README.md')).toEqual([]);
    // The operator's admin client stays with the service's CLI: customers never install it.
    expect(files.filter((f) => /admin/.test(f))).toEqual([]);
  }, 120_000);

  test('when the tarball is installed into an empty folder, then only jose comes with it, BillingClient loads and works there, and npx billing-client runs its CLI', () => {
    const app = path.join(work, 'instance');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'instance', version: '1.0.0', private: true }));
    npm(['install', '--no-package-lock', tarball], app);
    const installed = fs.readdirSync(path.join(app, 'node_modules')).filter((n) => !n.startsWith('.'));
    expect(installed.sort()).toEqual(['@billing', 'jose']);
    const readme = fs.readFileSync(path.join(app, 'node_modules/@billing/client/README.md'), 'utf8');
    for (const heading of ['## Install', '## Report usage', '## Licenses', '## Offline use', '## Errors']) expect(readme).toContain(heading);
    expect(readme).toContain('docs/LICENSE-VERIFICATION.md');
    const script = `
      const { BillingClient, BillingApiError, QueueFullError, QueueDiskFullError, UnsafePathError, RedirectRefusedError, verifyLicense } = require('@billing/client');
      const c = new BillingClient({ baseUrl: 'http://127.0.0.1:1', apiKey: 'k' });
      const types = [BillingClient, BillingApiError, QueueFullError, QueueDiskFullError, UnsafePathError, RedirectRefusedError, verifyLicense].map((f) => typeof f);
      console.log(JSON.stringify([...types, c.baseUrl]));`;
    const out = execFileSync(process.execPath, ['-e', script], { cwd: app }).toString().trim();
    expect(JSON.parse(out)).toEqual([...Array(7).fill('function'), 'http://127.0.0.1:1']);
    const exported = execFileSync(process.execPath, ['-e', "console.log(JSON.stringify(Object.keys(require('@billing/client'))))"], { cwd: app }).toString();
    expect(JSON.parse(exported)).toContain('BillingClient');
    expect((JSON.parse(exported) as string[]).filter((name) => /admin/i.test(name))).toEqual([]);

    // The CLI a vendor ships with its software: `npx billing-client` runs the installed build, offline.
    const help = execFileSync('npx', ['--no', '--', 'billing-client', '--help'], {
      cwd: app,
      env: { ...process.env, npm_config_update_notifier: 'false' },
    }).toString();
    expect(help).toContain('export-usage --queue-dir <dir> --out <file>');
    const queue = path.join(app, 'queue');
    const request = JSON.parse(
      execFileSync('npx', ['--no', '--', 'billing-client', 'activation-request', '--queue-dir', queue, '--fingerprint', 'site-0001'], { cwd: app }).toString(),
    ) as { body: { instance_key: { kty: string } } };
    expect(request.body.instance_key.kty).toBe('OKP');
    expect(fs.statSync(path.join(queue, 'instance-key.json')).mode & 0o777).toBe(0o600);
  }, 180_000);

  test('when the service package is required as billing-service/client, then it resolves to the same build', () => {
    const out = execFileSync(process.execPath, ['-e', "console.log(require.resolve('billing-service/client'))"], { cwd: root }).toString().trim();
    expect(out).toBe(path.join(root, 'packages/client/dist/index.js'));
  });
});
