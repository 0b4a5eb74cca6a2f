/**
 * The emergency procedures of docs/SECURITY-SETUP.md that need the real process: secrets read from
 * files, replaced by rewriting the file and sending SIGHUP, with no restart. The HTTP-only steps are
 * in tests/api/emergency-procedures.test.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Stripe from 'stripe';
import { testDatabaseUrl } from '../helpers/test-app';
import { call, freePort, type Running, startServer, waitFor } from '../helpers/server-process';

const token = () => randomBytes(32).toString('hex');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-secrets-'));
const files = { admin: path.join(dir, 'admin-token'), metrics: path.join(dir, 'metrics-token'), webhook: path.join(dir, 'webhook-secret') };
const write = (file: string, text: string) => fs.writeFileSync(file, `${text}\n`, { mode: 0o600 });

const OLD = token();
const OLD_METRICS = token();
const OLD_WHSEC = `whsec_${randomBytes(24).toString('base64url')}`;
let r: Running;
let port: number;
let pid: number;

beforeAll(async () => {
  write(files.admin, OLD);
  write(files.metrics, OLD_METRICS);
  write(files.webhook, OLD_WHSEC);
  port = await freePort();
  r = startServer({
    NODE_ENV: 'test',
    DATABASE_URL: testDatabaseUrl(),
    PORT: String(port),
    DATA_DIR: dir,
    ADMIN_API_TOKEN_FILE: files.admin,
    METRICS_TOKEN_FILE: files.metrics,
    STRIPE_WEBHOOK_SECRET_FILE: files.webhook,
  });
  await waitFor(r, /listening/);
  pid = r.child.pid!;
}, 60_000);
afterAll(async () => {
  if (r.child.exitCode === null) {
    r.child.kill('SIGTERM');
    await r.exited;
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

/** `kill -HUP <pid>`, then wait for the answer in the log. */
async function hup(): Promise<void> {
  const from = r.out().length;
  process.kill(pid, 'SIGHUP');
  await waitFor(r, /secrets reloaded|secrets not reloaded/, 10_000, from);
}
const admin = (t: string, p = '/api/customers') => call(port, 'GET', p, { Authorization: `Bearer ${t}` });
const scrape = (t: string) => call(port, 'GET', '/metrics', { Authorization: `Bearer ${t}` });
function webhook(secret: string) {
  const payload = JSON.stringify({
    id: `evt_${randomBytes(8).toString('hex')}`,
    object: 'event',
    type: 'ping',
    created: Math.floor(Date.now() / 1000),
    data: { object: {} },
  });
  const signature = Stripe.webhooks.generateTestHeaderString({ payload, secret });
  return call(port, 'POST', '/api/webhooks/stripe', { 'Content-Type': 'application/json', 'Stripe-Signature': signature }, payload);
}

describe('The admin token leaked', () => {
  test('when the token file is rewritten and SIGHUP sent, step by step, then the old token is refused and the new one accepted, without a restart', async () => {
    expect((await admin(OLD)).status).toBe(200);
    // Something done with the leaked token, to be found in step 4.
    const created = await call(
      port,
      'POST',
      '/api/customers',
      { Authorization: `Bearer ${OLD}`, 'Content-Type': 'application/json' },
      JSON.stringify({ email: `leak-${Date.now()}@example.com`, company_name: 'Leak' }),
    );
    expect(created.status).toBe(201);

    // 1-2. A new token beside the old one.
    const NEW = token();
    write(files.admin, `${NEW},${OLD}`);
    await hup();
    expect((await admin(NEW)).status).toBe(200);
    expect((await admin(OLD)).status).toBe(200);

    // 3. Only the new one.
    write(files.admin, NEW);
    await hup();
    expect((await admin(OLD)).status).toBe(401);
    expect((await admin(NEW)).status).toBe(200);
    expect(r.child.exitCode).toBeNull();
    expect(r.child.pid).toBe(pid);

    // 4. What the old token did, by its fingerprint.
    const fingerprint = createHash('sha256').update(OLD).digest('hex').slice(0, 12);
    const trail = await admin(NEW, `/api/audit?actor=admin&actor_id=admin:${fingerprint}&limit=200`);
    expect(trail.status).toBe(200);
    const actions = JSON.parse(trail.body).data.map((e: { action: string }) => e.action);
    expect(actions).toContain('customer.create');

    expect(r.out()).toContain('"reloaded":["ADMIN_API_TOKEN","METRICS_TOKEN","STRIPE_WEBHOOK_SECRET"]');
    expect(r.out()).not.toContain(OLD);
    expect(r.out()).not.toContain(NEW);
    write(files.admin, OLD); // for the tests below
    await hup();
  });

  test('when the rewritten file is invalid, then SIGHUP keeps the running tokens and logs an error naming the setting, not the value', async () => {
    expect((await admin(OLD)).status).toBe(200);
    fs.writeFileSync(files.admin, '\n');
    try {
      const from = r.out().length;
      await hup();
      const line = r
        .out()
        .slice(from)
        .split('\n')
        .find((l) => l.includes('secrets not reloaded'));
      expect(line).toMatch(/"problems":\["ADMIN_API_TOKEN_FILE: .*admin-token is empty"\]/);
      expect((await admin(OLD)).status).toBe(200);
    } finally {
      write(files.admin, OLD);
    }
  });
});

describe('The metrics token leaked', () => {
  test('when the metrics token file is rewritten and SIGHUP sent, then Prometheus needs the new token', async () => {
    expect((await scrape(OLD_METRICS)).status).toBe(200);
    const NEW_METRICS = token();
    write(files.metrics, NEW_METRICS);
    await hup();
    expect((await scrape(OLD_METRICS)).status).toBe(401);
    expect((await scrape(NEW_METRICS)).status).toBe(200);
    expect(r.out()).not.toContain(NEW_METRICS);
  });
});

describe('The Stripe webhook secret leaked', () => {
  test('when the rolled secret is written to the file and SIGHUP sent, then events signed with the old secret are refused and the new one accepted', async () => {
    expect((await webhook(OLD_WHSEC)).status).toBe(200);
    const NEW_WHSEC = `whsec_${randomBytes(24).toString('base64url')}`;
    write(files.webhook, NEW_WHSEC);
    await hup();
    const forged = await webhook(OLD_WHSEC);
    expect(forged.status).toBe(400);
    expect(JSON.parse(forged.body).error.code).toBe('INVALID_SIGNATURE');
    expect((await webhook(NEW_WHSEC)).status).toBe(200);
    expect(r.out()).not.toContain(NEW_WHSEC);
    expect(r.child.pid).toBe(pid);
  });
});
