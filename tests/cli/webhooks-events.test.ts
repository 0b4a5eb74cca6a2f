import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { uuidv7 } from '../../src/lib/ids';
import { startReceiver, webhookEnv, type Receiver } from '../helpers/delivery-fixtures';
import { emitEvent, PUBLIC_HOOK_URL } from '../helpers/factories';
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

/**
 * The delivery commands, against a service that may deliver to this machine (WEBHOOK_ALLOW_PRIVATE),
 * and a receiver here that verifies every request with the standardwebhooks package. No delivery
 * worker runs: other files' endpoints share the database, and only what these commands send is sent.
 */
describe('billing-admin webhooks test|deliveries and events resend', () => {
  let d: Service;
  let denv: Record<string, string>;
  let receiver: Receiver;
  // This file's own endpoints, found by their description: other files make endpoints in the same database.
  const description = `cli deliveries ${uuidv7()}`;
  beforeAll(async () => {
    d = await startService(webhookEnv());
    denv = { BILLING_API_URL: d.url, ADMIN_API_TOKEN: d.t.adminToken };
    receiver = await startReceiver();
  });
  afterAll(async () => {
    await d.t.db('webhook_endpoints').where({ description }).delete();
    await receiver.close();
    await d.close();
  });

  /** An endpoint at the receiver, made through the CLI; the receiver verifies with the secret it printed. */
  async function receiving(events = ['customer.updated']) {
    const r = await cli(['webhooks', 'create', receiver.url, ...events.flatMap((e) => ['--event', e]), '--description', description, '--json'], {
      env: denv,
    });
    expect(r.code).toBe(0);
    const created = JSON.parse(r.stdout) as { webhook_endpoint: { id: string }; secret: string };
    receiver.secrets.push(created.secret);
    return created.webhook_endpoint.id;
  }
  const attemptsOf = async (id: string) =>
    (await d.t.db('webhook_attempts').where({ endpoint_id: id }).orderBy('id', 'desc').select('id')).map((a: { id: string }) => String(a.id));

  test('when an endpoint is tested, then the receiver verifies a webhook_endpoint.test event carrying the endpoint as the API shows it', async () => {
    const id = await receiving();
    const before = ((await serviceJson(d, `/api/webhook-endpoints/${id}`)) as { webhook_endpoint: unknown }).webhook_endpoint;
    receiver.behave(() => ({ status: 204 }));
    const r = await cli(['webhooks', 'test', id], { env: denv });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^event +evt_[0-9a-f]{32}\noutcome +delivered\nstatus +204\nduration +\d+ ms\nerror +-\ndelivery +\d+ \(delivered\)\n$/);
    const eventId = /^event +(\S+)/.exec(r.stdout)![1]!;
    const got = receiver.received.filter((x) => x.id === eventId);
    expect(got).toHaveLength(1);
    expect(got[0]!.verifyError).toBeNull();
    const body = JSON.parse(got[0]!.body);
    expect(body).toEqual({ id: eventId, type: 'webhook_endpoint.test', created_at: expect.any(String), customer_id: null, data: before });
    expect(body).toEqual(((await serviceJson(d, `/api/events/${eventId}`)) as { event: unknown }).event);
    expect(got[0]!.body + r.stdout + r.stderr).not.toMatch(/whsec_/);
  });

  test('when the receiver fails the test, then the outcome is printed and the command exits 1; unknown endpoints are a 404', async () => {
    const id = await receiving();
    receiver.behave(() => ({ status: 500, body: 'down for maintenance' }));
    const r = await cli(['webhooks', 'test', id], { env: denv });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/\noutcome +failed\nstatus +500\n[\s\S]*\ndelivery +\d+ \(pending, next attempt \d{4}-/);
    expect(r.stderr).toMatch(`error: the test event was not delivered to ${id}: it is retried on the schedule`);
    const json = await cli(['webhooks', 'test', id, '--json'], { env: denv });
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({
      attempt: { outcome: 'failed', status: 500 },
      delivery: { endpoint_id: id, state: 'pending', attempts: 1 },
    });
    const missing = await cli(['webhooks', 'test', '0193a8c4-e1b0-7c3f-9a51-d2e4b6c8a0f1'], { env: denv });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/404 NOT_FOUND/);
    expect(receiver.received.filter((x) => x.verifyError !== null)).toEqual([]);
  });

  test('when deliveries are listed a page at a time, then the cursor continues, --all follows every page, and --json is the service’s', async () => {
    const id = await receiving();
    let n = 0;
    receiver.behave(() => ({ status: ++n === 2 ? 503 : 200 }));
    for (let i = 0; i < 3; i++) await cli(['webhooks', 'test', id], { env: denv });
    const attempts = await attemptsOf(id);
    expect(attempts).toHaveLength(3);

    const first = await cli(['webhooks', 'deliveries', id, '--limit', '2'], { env: denv });
    expect(first.code).toBe(0);
    const lines = first.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ATTEMPTED +EVENT +TYPE +OUTCOME +STATUS +MS +ERROR$/);
    expect(lines.slice(1).map((l) => l.split(/ +/).slice(2, 5))).toEqual([
      ['webhook_endpoint.test', 'delivered', '200'],
      ['webhook_endpoint.test', 'failed', '503'],
    ]);
    const cursor = /more: --cursor (\S+) \(or --all\)/.exec(first.stderr)![1]!;
    const next = await cli(['webhooks', 'deliveries', id, '--limit', '2', '--cursor', cursor, '--json'], { env: denv });
    expect(JSON.parse(next.stdout)).toEqual(await serviceJson(d, `/api/webhook-endpoints/${id}/deliveries?limit=2&cursor=${encodeURIComponent(cursor)}`));
    expect(JSON.parse(next.stdout).data.map((a: { id: string }) => a.id)).toEqual([attempts[2]]);
    const all = await cli(['webhooks', 'deliveries', id, '--limit', '1', '--all', '--json'], { env: denv });
    const pages = all.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { data: { id: string }[] });
    expect(pages).toHaveLength(3);
    expect(pages.flatMap((p) => p.data.map((a) => a.id))).toEqual(attempts);
    const none = await cli(['webhooks', 'deliveries', await receiving()], { env: denv });
    expect(none.stderr).toMatch(/no delivery attempts/);
    expect((await cli(['webhooks', 'deliveries', id, '--limit', '0'], { env: denv })).code).toBe(64);
  });

  test('when an event is resent to one endpoint or to all that want it, then each delivery is due again with a fresh schedule', async () => {
    const id = await receiving(['customer.updated']);
    const other = await receiving(['customer.*']);
    const eventId = await emitEvent(d.t, { type: 'customer.updated', data: { description } });
    // As if both had been tried and given up on.
    await d.t
      .db('webhook_deliveries')
      .where({ event_id: eventId })
      .update({ state: 'failed', attempts: 11, next_attempt_at: d.t.db.raw("now() + interval '1 day'") });

    const one = await cli(['events', 'resend', eventId, '--endpoint', id], { env: denv });
    expect(one.code).toBe(0);
    expect(one.stdout).toMatch(new RegExp(`^DELIVERY +ENDPOINT +STATE +NEXT ATTEMPT\n\\d+ +${id} +pending +\\d{4}-`));
    expect(one.stderr).toContain(`Event ${eventId} queued again to 1 endpoint.`);
    const rows = async () => {
      const { rows: found }: { rows: { endpoint_id: string; state: string; attempts: number; due: boolean }[] } = await d.t.db.raw(
        'select endpoint_id, state, attempts, next_attempt_at <= now() as due from webhook_deliveries where event_id = ?',
        [eventId],
      );
      return Object.fromEntries(found.map((r) => [r.endpoint_id, [r.state, r.attempts, r.due]]));
    };
    expect(await rows()).toMatchObject({ [id]: ['pending', 0, true], [other]: ['failed', 11, false] });

    const all = await cli(['events', 'resend', eventId, '--json'], { env: denv });
    expect(all.code).toBe(0);
    const queued = (JSON.parse(all.stdout) as { event_id: string; deliveries: { endpoint_id: string; state: string }[] }).deliveries;
    expect(queued.map((q) => q.endpoint_id)).toEqual(expect.arrayContaining([id, other]));
    expect(queued.every((q) => q.state === 'pending')).toBe(true);
    expect(await rows()).toMatchObject({ [id]: ['pending', 0, true], [other]: ['pending', 0, true] });

    const gone = await cli(['events', 'resend', `evt_${'0'.repeat(32)}`], { env: denv });
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/404 NOT_FOUND/);
    const bad = await cli(['events', 'resend', eventId, '--endpoint', 'not-an-id'], { env: denv });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/endpoint_id/);
  });
});
