import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { uuidv7 } from '../../src/lib/ids';
import { PUBLIC_HOOK_URL } from '../helpers/factories';
import { cli, serviceJson, startService, type Service } from './cli-harness';

/** billing-admin webhooks (endpoints out) and events, against a real service. */
let s: Service;
let env: Record<string, string>;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-cli-webhooks-'));
beforeAll(async () => {
  s = await startService();
  env = { BILLING_API_URL: s.url, ADMIN_API_TOKEN: s.t.adminToken };
});
afterAll(async () => {
  await s.t.db('webhook_endpoints').where('url', 'like', '%93.184.215.14%').delete();
  await s.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const SECRET = /^whsec_[A-Za-z0-9+/]{43}=$/;

async function create(...extra: string[]) {
  const r = await cli(['webhooks', 'create', PUBLIC_HOOK_URL, '--event', 'license.*', '--event', 'instance.released', ...extra], { env });
  expect(r.code).toBe(0);
  return r;
}

describe('billing-admin webhooks', () => {
  test('when an endpoint is created, then stdout holds only its secret, once, and stderr says to store it', async () => {
    const r = await create('--description', 'CRM');
    expect(r.stdout.trim()).toMatch(SECRET);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/Created webhook endpoint [0-9a-f-]{36} \(https:\/\/93\.184\.215\.14\/hook\)/);
    expect(r.stderr).toMatch(/Store this signing secret now: it is shown this once/);
    const id = /endpoint ([0-9a-f-]{36})/.exec(r.stderr)![1]!;
    expect(await s.t.c.webhookEndpoints.signingSecrets(s.t.db, id)).toEqual([r.stdout.trim()]);

    const shown = await cli(['webhooks', 'show', id], { env });
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(
      /^id +[0-9a-f-]{36}\nurl +https:\/\/93\.184\.215\.14\/hook\nevents +license\.\*, instance\.released\ndescription +CRM\nstatus +enabled\n/,
    );
    expect(shown.stdout).not.toContain(r.stdout.trim());
    const listed = await cli(['webhooks', 'list', '--limit', '200'], { env });
    expect(listed.stdout).toMatch(/^ID +URL +EVENTS +STATUS +LAST SUCCESS +CREATED\n/);
    expect(listed.stdout).toContain(id);
    expect(listed.stdout + listed.stderr).not.toMatch(/whsec_/);
  });

  test('when read with --json, then show and list print the service’s JSON unchanged', async () => {
    const id = JSON.parse((await create('--json')).stdout).webhook_endpoint.id;
    for (const [argv, p] of [
      [['webhooks', 'show', id], `/api/webhook-endpoints/${id}`],
      [['webhooks', 'list', '--limit', '5'], '/api/webhook-endpoints?limit=5'],
    ] as const) {
      const r = await cli([...argv, '--json'], { env });
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual(await serviceJson(s, p));
    }
  });

  test('when updated, disabled, enabled and deleted, then each change is made and said', async () => {
    const id = JSON.parse((await create('--json', '--description', 'old')).stdout).webhook_endpoint.id;
    const off = await cli(['webhooks', 'update', id, '--disable', '--event', '*', '--clear-description'], { env });
    expect(off.code).toBe(0);
    expect(off.stdout).toMatch(/events +\*\ndescription +-\nstatus +disabled \(admin\)/);
    const on = await cli(['webhooks', 'update', id, '--enable', '--json'], { env });
    expect(JSON.parse(on.stdout).webhook_endpoint).toMatchObject({ disabled: false, disabled_reason: null, events: ['*'], description: null });
    expect((await cli(['webhooks', 'update', id], { env })).code).toBe(64);
    expect((await cli(['webhooks', 'update', id, '--enable', '--disable'], { env })).code).toBe(64);
    const bad = await cli(['webhooks', 'update', id, '--endpoint-url', 'https://169.254.169.254/'], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/422 VALIDATION_FAILED/);
    expect(bad.stderr).toMatch(/url: must not point at a non-public address/);
    const del = await cli(['webhooks', 'delete', id], { env });
    expect(del.code).toBe(0);
    expect(del.stderr).toMatch(`Deleted webhook endpoint ${id}.`);
    const gone = await cli(['webhooks', 'show', id], { env });
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/404 NOT_FOUND/);
  });

  test('when the secret is rotated, then the new one is printed once and the old one keeps signing for the grace given', async () => {
    // Named by its own description: other files make endpoints in the same database at the same time.
    const description = `rotate ${uuidv7()}`;
    const first = (await create('--description', description)).stdout.trim();
    const id = (await s.t.db('webhook_endpoints').where({ description }).first())!.id;
    const r = await cli(['webhooks', 'rotate-secret', id, '--grace', '1h'], { env });
    expect(r.code).toBe(0);
    const next = r.stdout.trim();
    expect(next).toMatch(SECRET);
    expect(r.stderr).toMatch(/the previous one signs too until \d{4}-/);
    expect(await s.t.c.webhookEndpoints.signingSecrets(s.t.db, id)).toEqual([next, first]);
    const now = await cli(['webhooks', 'rotate-secret', id, '--grace', '0s'], { env });
    expect(now.stderr).toMatch(/the previous one no longer signs/);
    expect(await s.t.c.webhookEndpoints.signingSecrets(s.t.db, id)).toEqual([now.stdout.trim(), first]);
    expect((await cli(['webhooks', 'rotate-secret', id, '--grace', 'a day'], { env })).code).toBe(64);
  });

  test('when --output is given, then the secret goes to a file only its owner can read, not to stdout', async () => {
    const file = path.join(dir, 'secret');
    const r = await create('--output', file);
    expect(r.stdout).toBe('');
    expect(fs.readFileSync(file, 'utf8').trim()).toMatch(SECRET);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(r.stderr).toMatch(/The signing secret is in .*secret \(readable by you only\)/);
  });

  test('when `webhooks` is given alone, then it is still the Stripe webhooks report', async () => {
    const r = await cli(['webhooks', '--json'], { env });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(await serviceJson(s, '/api/reports/webhooks'));
  });
});

describe('billing-admin events', () => {
  test('when events are listed a page at a time and one is shown, then the cursor continues and the data is printed', async () => {
    const customerId = uuidv7();
    await s.t.db('customers').insert({ id: customerId, email: `cli-events-${customerId}@example.com`, company_name: 'E' });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++)
      ids.push(...(await s.t.db.transaction((trx) => s.t.c.events.emit(trx, { type: 'license.expired', customerId, data: { n: i } }))));
    const first = await cli(['events', 'list', '--customer', customerId, '--limit', '2'], { env });
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^ID +TYPE +CUSTOMER +CREATED\n/);
    expect(
      first.stdout
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => l.split(/ +/)[0]),
    ).toEqual([ids[2], ids[1]]);
    expect(first.stderr).toContain(`more: --cursor ${ids[1]}`);
    const all = await cli(['events', 'list', '--customer', customerId, '--type', 'license.*', '--limit', '2', '--all', '--json'], { env });
    const pages = all.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { data: { id: string }[] });
    expect(pages.flatMap((p) => p.data.map((e) => e.id))).toEqual([ids[2], ids[1], ids[0]]);
    const after = await cli(['events', 'list', '--customer', customerId, '--cursor', ids[2]!, '--json'], { env });
    expect(JSON.parse(after.stdout).data.map((e: { id: string }) => e.id)).toEqual([ids[1], ids[0]]);

    const shown = await cli(['events', 'show', ids[0]!], { env });
    expect(shown.stdout).toMatch(new RegExp(`^id +${ids[0]}\ntype +license.expired\ncustomer +${customerId}\ncreated +\\S+\ndata\n\\{\n  "n": 0\n\\}\n$`));
    const json = await cli(['events', 'show', ids[0]!, '--json'], { env });
    expect(JSON.parse(json.stdout)).toEqual(await serviceJson(s, `/api/events/${ids[0]}`));
    const bad = await cli(['events', 'list', '--type', 'nope'], { env });
    expect(bad.code).toBe(2);
  });
});
