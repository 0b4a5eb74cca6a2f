/**
 * The CLI and its secrets: the admin token never crosses a network in clear unless the admin says
 * so, new keys written to files only their owner can read, and a bulk rotation whose answer is lost
 * on the way resumed without a key nobody holds.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cli, startService, type Service } from './cli-harness';

let s: Service;
let env: Record<string, string>;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-cli-keys-'));
beforeAll(async () => {
  s = await startService();
  env = { BILLING_API_URL: s.url, ADMIN_API_TOKEN: s.t.adminToken };
});
afterAll(async () => {
  await s.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const email = () => `clisec-${Math.random().toString(16).slice(2, 10)}@example.com`;
const KEY = /^cust_[0-9a-f-]{36}_[A-Za-z0-9_-]{43}$/;
const me = (key: string) => fetch(`${s.url}/api/me`, { headers: { 'x-api-key': key } });
const file = (name: string) => path.join(dir, `${name}-${Math.random().toString(16).slice(2, 8)}`);

/** A fetch that records where it was sent and with what token, and answers as a service would. */
function spy() {
  const sent: { url: string; authorization: string | null }[] = [];
  const f = ((url: string | URL, init?: RequestInit) => {
    sent.push({ url: String(url), authorization: new Headers(init?.headers).get('authorization') });
    return Promise.resolve(new Response(JSON.stringify({ data: [], next_cursor: null }), { status: 200, headers: { 'content-type': 'application/json' } }));
  }) as typeof fetch;
  return { sent, f };
}

describe('plain http:// to another host', () => {
  test.each(['http://billing.example.com', 'http://10.0.0.7:3000', 'http://[2001:db8::1]:3000'])(
    'when the URL is %s, then the CLI exits 64 and sends nothing',
    async (url) => {
      const { sent, f } = spy();
      const r = await cli(['customers', 'list'], { env: { BILLING_API_URL: url, ADMIN_API_TOKEN: s.t.adminToken }, fetch: f });
      expect(r.code).toBe(64);
      expect(r.stderr).toMatch(/refusing to send the admin token over plain http:\/\/ to .*: use https:\/\/, or add --insecure/);
      expect(r.stderr).not.toContain(s.t.adminToken);
      expect(sent).toEqual([]);
      // --url is held to the same rule.
      expect((await cli(['--url', url, 'customers', 'list'], { env: { ADMIN_API_TOKEN: s.t.adminToken }, fetch: f })).code).toBe(64);
      expect(sent).toEqual([]);
    },
  );

  test('when --insecure is given, then the request is sent as asked', async () => {
    const { sent, f } = spy();
    const r = await cli(['--insecure', 'customers', 'list'], { env: { BILLING_API_URL: 'http://billing.example.com', ADMIN_API_TOKEN: 't0ken' }, fetch: f });
    expect(r.code).toBe(0);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.url).toMatch(/^http:\/\/billing\.example\.com\/api\/customers/);
  });

  test.each(['https://billing.example.com', 'http://localhost:3000', 'http://127.0.0.1:3000', 'http://[::1]:3000'])(
    'when the URL is %s (TLS, or this machine), then no --insecure is needed (control)',
    async (url) => {
      const { sent, f } = spy();
      expect((await cli(['customers', 'list'], { env: { BILLING_API_URL: url, ADMIN_API_TOKEN: 't0ken' }, fetch: f })).code).toBe(0);
      expect(sent).toHaveLength(1);
    },
  );
});

describe('--output: key files readable by their owner only', () => {
  test('when a customer is created with --output, then the key is in a 0600 file, not on stdout, and it works', async () => {
    const out = file('customer-key');
    const old = process.umask(0o022); // a usual umask: a redirect would make the file 0644
    try {
      const r = await cli(['customers', 'create', '--email', email(), '--company', 'Acme', '--output', out], { env });
      expect(r.code).toBe(0);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(out);
    } finally {
      process.umask(old);
    }
    expect(fs.statSync(out).mode & 0o777).toBe(0o600);
    const key = fs.readFileSync(out, 'utf8').trim();
    expect(key).toMatch(KEY);
    expect((await me(key)).status).toBe(200);
  });

  test('when the --output file exists and others can read it, then nothing is created and it exits 64', async () => {
    const out = file('open-file');
    fs.writeFileSync(out, '');
    fs.chmodSync(out, 0o644);
    const address = email();
    const r = await cli(['customers', 'create', '--email', address, '--company', 'Acme', '--output', out], { env });
    expect(r.code).toBe(64);
    expect(r.stderr).toMatch(/can be read by group or others \(mode 0644\)/);
    expect(fs.readFileSync(out, 'utf8')).toBe('');
    expect(await s.t.db('customers').where({ email: address })).toEqual([]);
  });

  test('when a key is rotated with --output and --json, then the answer goes to the 0600 file', async () => {
    const c = await cli(['customers', 'create', '--email', email(), '--company', 'Acme', '--json'], { env });
    const id = (JSON.parse(c.stdout) as { customer: { id: string } }).customer.id;
    const out = file('rotated');
    const r = await cli(['--json', 'keys', 'rotate', id, '--grace', '0', '--output', out], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(fs.statSync(out).mode & 0o777).toBe(0o600);
    const body = JSON.parse(fs.readFileSync(out, 'utf8')) as { api_key: string };
    expect((await me(body.api_key)).status).toBe(200);
  });
});

describe('keys rotate-all, resumable', () => {
  test('when an answer is lost after the service committed it, then the CLI asks again with the same run id and every key it writes works', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await cli(['customers', 'create', '--email', email(), '--company', 'Acme', '--json'], { env });
      ids.push((JSON.parse(c.stdout) as { customer: { id: string } }).customer.id);
    }
    // The first answer is lost on its way back (the request reached the service, which committed).
    const seen: (string | null)[] = [];
    let lost = 0;
    const flaky = (async (url: string | URL, init?: RequestInit) => {
      seen.push(new Headers(init?.headers).get('idempotency-key'));
      const res = await fetch(url, init);
      if (lost++ === 0) {
        await res.arrayBuffer();
        throw new TypeError('fetch failed', { cause: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }) });
      }
      return res;
    }) as typeof fetch;
    const out = file('rotation');
    const args = ['keys', 'rotate-all', '--grace', '3600', '--output', out, ...ids.flatMap((id) => ['--customer', id])];
    const r = await cli(args, { env, fetch: flaky });
    expect(r.code).toBe(0);
    expect(seen).toHaveLength(2);
    expect(seen[0]).toBeTruthy();
    expect(seen[1]).toBe(seen[0]);
    expect(fs.statSync(out).mode & 0o777).toBe(0o600);
    const lines = fs
      .readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split('\t'));
    expect(lines.map(([id]) => id).sort()).toEqual([...ids].sort());
    for (const [, key] of lines) expect((await me(key!)).status).toBe(200);
    // Per customer: the first key (in its grace) and the one in the file; the lost one is revoked.
    for (const id of ids) {
      const live = await s.t
        .db('api_keys')
        .where({ customer_id: id })
        .whereNull('revoked_at')
        .andWhere((w) => void w.whereNull('expires_at').orWhere('expires_at', '>', s.t.db.fn.now()));
      expect(live).toHaveLength(2);
    }
  });

  test('when rotate-all stops, then it says the run id and how to resume', async () => {
    const failing = (() => Promise.reject(new TypeError('fetch failed'))) as typeof fetch;
    const r = await cli(['keys', 'rotate-all', '--grace', '60'], { env, fetch: failing });
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/resume with the same options and --run-id \S+/);
  }, 60_000);
});
