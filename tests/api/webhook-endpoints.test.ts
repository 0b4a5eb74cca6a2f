import request from 'supertest';
import { expectError } from '../helpers/envelope';
import { createWebhookEndpoint, emitEvent, PUBLIC_HOOK_URL } from '../helpers/factories';
import { createTestApp, TestApp } from '../helpers/test-app';

let t: TestApp;
let admin: Record<string, string>;
/** The app's clock runs this far ahead of the real one, to pass a grace period without sleeping. */
let skewMs = 0;
beforeAll(async () => {
  t = await createTestApp({}, { now: () => Date.now() + skewMs });
  admin = { Authorization: `Bearer ${t.adminToken}` };
});
afterEach(() => (skewMs = 0));
afterAll(async () => {
  // Endpoints wanting every event would get deliveries from every later test file: leave none behind.
  await t.db('webhook_endpoints').where('url', 'like', '%93.184.215.14%').delete();
  await t.close();
});

const SECRET_RE = /^whsec_[A-Za-z0-9+/]{43}=$/;
const FIELDS = [
  'id',
  'url',
  'events',
  'description',
  'disabled',
  'disabled_reason',
  'disabled_at',
  'failing_since',
  'last_success_at',
  'created_at',
  'updated_at',
];
const post = (body: object, app: TestApp = t) =>
  request(app.app)
    .post('/api/webhook-endpoints')
    .set({ Authorization: `Bearer ${app.adminToken}` })
    .send(body);
const get = (id: string) => request(t.app).get(`/api/webhook-endpoints/${id}`).set(admin);
const patch = (id: string, body: object) => request(t.app).patch(`/api/webhook-endpoints/${id}`).set(admin).send(body);
const rotate = (id: string, body?: object) => {
  const r = request(t.app).post(`/api/webhook-endpoints/${id}/rotate-secret`).set(admin);
  return body ? r.send(body) : r;
};
const secretsOf = (id: string) => t.c.webhookEndpoints.signingSecrets(t.db, id);

describe('POST /api/webhook-endpoints', () => {
  test('when an endpoint is created, then 201 answers it with a whsec_ secret of 32 random bytes, shown this once, not cached', async () => {
    const res = await post({ url: PUBLIC_HOOK_URL, events: ['license.*', 'customer.created'], description: 'CRM' });
    expect(res.status).toBe(201);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(Object.keys(res.body)).toEqual(['webhook_endpoint', 'secret']);
    expect(Object.keys(res.body.webhook_endpoint)).toEqual(FIELDS);
    expect(res.body.webhook_endpoint).toMatchObject({
      url: PUBLIC_HOOK_URL,
      events: ['license.*', 'customer.created'],
      description: 'CRM',
      disabled: false,
      disabled_reason: null,
      disabled_at: null,
      failing_since: null,
      last_success_at: null,
    });
    expect(res.body.secret).toMatch(SECRET_RE);
    expect(Buffer.from(res.body.secret.slice('whsec_'.length), 'base64')).toHaveLength(32);
    // Each endpoint its own secret.
    const other = await createWebhookEndpoint(t);
    expect(other.secret).not.toBe(res.body.secret);
  });

  test('when the secret has been shown, then it is in no read, no audit row, no log line, and stored only sealed', async () => {
    const { id, secret } = await createWebhookEndpoint(t, { events: ['*'] });
    const afterRotate = (await rotate(id, { grace_period: '1h' })).body.secret as string;
    expect(afterRotate).toMatch(SECRET_RE);
    await patch(id, { description: 'changed' });
    const reads = [await get(id), await request(t.app).get('/api/webhook-endpoints?limit=200').set(admin)];
    for (const res of reads) {
      expect(res.status).toBe(200);
      const text = JSON.stringify(res.body);
      expect(text).not.toContain(secret);
      expect(text).not.toContain(afterRotate);
      expect(text).not.toMatch(/whsec_|"secret"/);
    }
    const audit = await t.db('audit_log').where({ target_id: id }).orderBy('id');
    expect(audit.map((r) => r.action)).toEqual(['webhook_endpoint.create', 'webhook_endpoint.rotate_secret', 'webhook_endpoint.update']);
    const auditText = JSON.stringify(audit);
    for (const s of [secret, afterRotate, secret.slice(6), afterRotate.slice(6)]) {
      expect(auditText).not.toContain(s);
      expect(t.logs.join('')).not.toContain(s);
    }
    expect(t.logs.join('')).toContain('/rotate-secret'); // the requests were logged (control: the logs are captured)
    // An event emitted now carries no secret either.
    const eventId = await emitEvent(t, { type: 'customer.updated' });
    expect(JSON.stringify(await t.db('events').where({ id: eventId }))).not.toMatch(/whsec_/);

    const stored = await t.db('webhook_endpoint_secrets').where({ endpoint_id: id }).orderBy('created_at');
    expect(stored).toHaveLength(2);
    for (const row of stored) {
      expect(row.ciphertext).toMatch(/^v1\./);
      for (const s of [secret, afterRotate]) {
        expect(row.ciphertext).not.toContain(s.slice(6));
        expect(row.ciphertext).not.toContain(Buffer.from(s.slice(6), 'base64').toString('hex'));
        expect(row.ciphertext).not.toContain(Buffer.from(s).toString('base64url'));
      }
    }
    expect(stored.map((r) => t.c.secretBox.open(r.ciphertext, id)).sort()).toEqual([secret, afterRotate].sort());
    // Sealed for this endpoint: copied onto another one's row it does not open.
    expect(() => t.c.secretBox.open(stored[0]!.ciphertext, '01900000-0000-7000-8000-000000000000')).toThrow();
  });

  test.each([
    [{ events: ['*'] }, 'url'],
    [{ url: PUBLIC_HOOK_URL }, 'events'],
    [{ url: PUBLIC_HOOK_URL, events: [] }, 'events'],
    [{ url: PUBLIC_HOOK_URL, events: ['license.nope'] }, 'events.0'],
    [{ url: PUBLIC_HOOK_URL, events: ['license'] }, 'events.0'],
    [{ url: PUBLIC_HOOK_URL, events: ['license.*', 'license.*'] }, 'events'],
    [{ url: PUBLIC_HOOK_URL, events: 'license.*' }, 'events'],
    [{ url: PUBLIC_HOOK_URL, events: ['*'], description: '' }, 'description'],
    [{ url: PUBLIC_HOOK_URL, events: ['*'], description: 'a\u202eb' }, 'description'],
    [{ url: PUBLIC_HOOK_URL, events: ['*'], secret: 'whsec_mine' }, ''],
    [{ url: 'not a url', events: ['*'] }, 'url'],
    [{ url: 'ftp://93.184.215.14/hook', events: ['*'] }, 'url'],
    [{ url: `https://93.184.215.14/${'a'.repeat(2100)}`, events: ['*'] }, 'url'],
  ])('when the body is %j, then 422 names %s and nothing is written', async (body, field) => {
    const before = await t.db('webhook_endpoints').count({ n: '*' }).first();
    const res = await post(body);
    expectError(res, 422, 'VALIDATION_FAILED');
    expect(res.body.error.details.map((d: { path: string }) => d.path)).toContain(field);
    expect(await t.db('webhook_endpoints').count({ n: '*' }).first()).toEqual(before);
  });

  test('when the filters are every type, an object and the everything filter, then each is accepted (control)', async () => {
    for (const events of [['*'], ['license.*', 'instance.*', 'usage.forwarding_failed'], ['webhook_endpoint.disabled']]) {
      expect((await post({ url: PUBLIC_HOOK_URL, events })).status).toBe(201);
    }
  });
});

describe('request forgery: where an endpoint may point (WEBHOOK_ALLOW_HTTP=false, WEBHOOK_ALLOW_PRIVATE=false)', () => {
  let strict: TestApp;
  beforeAll(async () => {
    strict = await createTestApp({ WEBHOOK_ALLOW_HTTP: 'false', WEBHOOK_ALLOW_PRIVATE: 'false' });
  });
  afterAll(async () => {
    await strict.db('webhook_endpoints').where('url', 'like', '%93.184.215.14%').delete();
    await strict.close();
  });

  test.each([
    ['https://127.0.0.1/hook', /loopback/],
    ['https://localhost/hook', /local or internal host name/],
    ['https://LOCALHOST./hook', /local or internal host name/],
    ['https://[::1]/hook', /loopback/],
    ['https://10.0.0.1/hook', /private/],
    ['https://172.16.0.1/hook', /private/],
    ['https://192.168.0.1/hook', /private/],
    ['https://169.254.169.254/latest/meta-data', /linkLocal/],
    ['https://[fd00::1]/hook', /uniqueLocal/],
    ['https://0x7f000001/hook', /loopback/],
    ['https://2130706433/hook', /loopback/],
    ['https://0177.0.0.1/hook', /loopback/],
    ['https://[::ffff:127.0.0.1]/hook', /loopback/],
    ['https://0.0.0.0/hook', /unspecified/],
    ['https://224.0.0.1/hook', /multicast/],
    ['https://user:pass@93.184.215.14/hook', /credentials/],
    ['http://93.184.215.14/hook', /must be an https URL/],
    ['https://metadata.google.internal/computeMetadata/v1/', /local or internal host name/],
    ['https://no-such-host.invalid/hook', /does not resolve/],
  ])('when the URL is %s, then 422 says why and no endpoint is made', async (url, why) => {
    const before = await strict.db('webhook_endpoints').count({ n: '*' }).first();
    const res = await post({ url, events: ['*'] }, strict);
    expectError(res, 422, 'VALIDATION_FAILED');
    expect(res.body.error.message).toMatch(/^Invalid webhook URL: /);
    expect(res.body.error.message).toMatch(why);
    expect(res.body.error.details).toEqual([{ path: 'url', message: expect.stringMatching(why) }]);
    expect(await strict.db('webhook_endpoints').count({ n: '*' }).first()).toEqual(before);
    // The refusal is audited as a failed attempt, with no URL echoed into it.
    const row = await strict.db('audit_log').where({ request_id: res.headers['x-request-id'] }).first();
    expect(row).toMatchObject({ action: 'webhook_endpoint.create', outcome: 'failure', details: { code: 'VALIDATION_FAILED' } });
  });

  test('when the URL is a public https address, then it is accepted (control), and changing it to a forbidden one is refused', async () => {
    const res = await post({ url: PUBLIC_HOOK_URL, events: ['*'] }, strict);
    expect(res.status).toBe(201);
    const id = res.body.webhook_endpoint.id;
    const bad = await request(strict.app)
      .patch(`/api/webhook-endpoints/${id}`)
      .set({ Authorization: `Bearer ${strict.adminToken}` })
      .send({ url: 'https://10.1.2.3/x' });
    expectError(bad, 422, 'VALIDATION_FAILED');
    const good = await request(strict.app)
      .patch(`/api/webhook-endpoints/${id}`)
      .set({ Authorization: `Bearer ${strict.adminToken}` })
      .send({ url: 'https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/hook' });
    expect(good.status).toBe(200);
    expect(good.body.webhook_endpoint.url).toBe('https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/hook');
  });

  test('when http is allowed (the test default), then an http URL to a public address is accepted (control for the https rule)', async () => {
    expect(t.c.config.webhooks.allowHttp).toBe(true);
    expect((await post({ url: 'http://93.184.215.14/hook', events: ['*'] })).status).toBe(201);
    // Private addresses stay refused with http allowed: WEBHOOK_ALLOW_PRIVATE is false by default.
    expectError(await post({ url: 'http://127.0.0.1:8080/hook', events: ['*'] }), 422, 'VALIDATION_FAILED');
  });
});

describe('GET /api/webhook-endpoints', () => {
  test('when there are several, then they come newest first, a page at a time', async () => {
    const made = [];
    for (let i = 0; i < 3; i++) made.push((await createWebhookEndpoint(t, { description: `page ${i}` })).id);
    const first = await request(t.app).get('/api/webhook-endpoints?limit=2').set(admin);
    expect(first.status).toBe(200);
    expect(first.body.data.map((e: { id: string }) => e.id)).toEqual([made[2], made[1]]);
    expect(Object.keys(first.body.data[0])).toEqual(FIELDS);
    const second = await request(t.app).get(`/api/webhook-endpoints?limit=2&cursor=${first.body.next_cursor}`).set(admin);
    expect(second.body.data[0].id).toBe(made[0]);
    expectError(await request(t.app).get('/api/webhook-endpoints?cursor=bm9wZQ').set(admin), 422, 'VALIDATION_FAILED');
    expectError(await request(t.app).get('/api/webhook-endpoints?limit=0').set(admin), 422, 'VALIDATION_FAILED');
  });

  test('when the id is unknown or malformed, then 404 for every route of one endpoint', async () => {
    for (const id of ['01900000-0000-7000-8000-000000000000', 'nope', '1']) {
      expectError(await get(id), 404, 'NOT_FOUND');
      expectError(await patch(id, { description: 'x' }), 404, 'NOT_FOUND');
      expectError(await request(t.app).delete(`/api/webhook-endpoints/${id}`).set(admin), 404, 'NOT_FOUND');
      expectError(await rotate(id), 404, 'NOT_FOUND');
    }
  });
});

describe('PATCH /api/webhook-endpoints/:id', () => {
  test('when the url, events and description change, then the answer and later reads show them, and the audit row names the fields', async () => {
    const { id } = await createWebhookEndpoint(t, { description: 'old' });
    const res = await patch(id, { url: 'https://93.184.215.14/other?token=abc', events: ['instance.*'], description: null });
    expect(res.status).toBe(200);
    expect(res.body.webhook_endpoint).toMatchObject({ url: 'https://93.184.215.14/other?token=abc', events: ['instance.*'], description: null });
    expect((await get(id)).body).toEqual(res.body);
    expect(Date.parse(res.body.webhook_endpoint.updated_at)).toBeGreaterThanOrEqual(Date.parse(res.body.webhook_endpoint.created_at));
    const row = await t.db('audit_log').where({ target_id: id, action: 'webhook_endpoint.update' }).first();
    expect(row!.details).toEqual({ fields: ['url', 'events', 'description'], url: 'https://93.184.215.14/other?…', events: ['instance.*'] });
    expect(JSON.stringify(row)).not.toContain('token=abc'); // a receiver's token in the query is not copied into the audit log
  });

  test('when disabled by an admin, then it says so and gets no deliveries; enabled again, its failure record is cleared', async () => {
    const { id } = await createWebhookEndpoint(t, { events: ['subscription.past_due'] });
    const off = await patch(id, { disabled: true });
    expect(off.body.webhook_endpoint).toMatchObject({ disabled: true, disabled_reason: 'admin' });
    expect(Date.parse(off.body.webhook_endpoint.disabled_at)).not.toBeNaN();
    const missed = await emitEvent(t, { type: 'subscription.past_due' });
    expect(await t.db('webhook_deliveries').where({ event_id: missed, endpoint_id: id })).toEqual([]);

    // As the delivery engine leaves an endpoint it disabled: failing, with its reason.
    await t
      .db('webhook_endpoints')
      .where({ id })
      .update({ disabled_reason: 'failing', failing_since: new Date(Date.now() - 6 * 86_400_000) });
    const on = await patch(id, { disabled: false });
    expect(on.body.webhook_endpoint).toMatchObject({ disabled: false, disabled_reason: null, disabled_at: null, failing_since: null });
    const got = await emitEvent(t, { type: 'subscription.past_due' });
    expect(await t.db('webhook_deliveries').where({ event_id: got, endpoint_id: id })).toHaveLength(1);
  });

  test.each([[{}], [{ disabled: 'yes' }], [{ events: [] }], [{ url: 'https://127.0.0.1/' }], [{ id: '01900000-0000-7000-8000-000000000000' }]])(
    'when the body is %j, then 422 and nothing changes',
    async (body) => {
      const { id } = await createWebhookEndpoint(t);
      const before = (await get(id)).body;
      expectError(await patch(id, body), 422, 'VALIDATION_FAILED');
      expect((await get(id)).body).toEqual(before);
    },
  );
});

describe('DELETE /api/webhook-endpoints/:id', () => {
  test('when deleted, then 204, it is gone with its secrets and deliveries, and the audit row says so', async () => {
    const { id } = await createWebhookEndpoint(t, { events: ['subscription.canceled'] });
    const eventId = await emitEvent(t, { type: 'subscription.canceled' });
    expect(await t.db('webhook_deliveries').where({ endpoint_id: id })).toHaveLength(1);
    const res = await request(t.app).delete(`/api/webhook-endpoints/${id}`).set(admin);
    expect(res.status).toBe(204);
    expect(res.text).toBe('');
    expectError(await get(id), 404, 'NOT_FOUND');
    expect(await t.db('webhook_deliveries').where({ endpoint_id: id })).toEqual([]);
    expect(await t.db('webhook_endpoint_secrets').where({ endpoint_id: id })).toEqual([]);
    expect(await t.db('events').where({ id: eventId }).first()).toBeDefined(); // the event stays
    expect(await t.db('audit_log').where({ target_id: id, action: 'webhook_endpoint.delete', outcome: 'success' })).toHaveLength(1);
    expectError(await request(t.app).delete(`/api/webhook-endpoints/${id}`).set(admin), 404, 'NOT_FOUND');
  });
});

describe('POST /api/webhook-endpoints/:id/rotate-secret', () => {
  test('when rotated with the default grace, then the new secret signs first and the old one beside it for 24 hours, then alone', async () => {
    const { id, secret } = await createWebhookEndpoint(t);
    expect(await secretsOf(id)).toEqual([secret]);
    const res = await rotate(id);
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(Object.keys(res.body)).toEqual(['webhook_endpoint', 'secret', 'previous_secret_expires_at']);
    const next = res.body.secret;
    expect(next).toMatch(SECRET_RE);
    expect(next).not.toBe(secret);
    expect(Date.parse(res.body.previous_secret_expires_at) - Date.now()).toBeGreaterThan(24 * 3_600_000 - 60_000);
    expect(Date.parse(res.body.previous_secret_expires_at) - Date.now()).toBeLessThanOrEqual(24 * 3_600_000);
    expect(await secretsOf(id)).toEqual([next, secret]);
    skewMs = 23 * 3_600_000;
    expect(await secretsOf(id)).toEqual([next, secret]);
    skewMs = 24 * 3_600_000 + 1_000;
    expect(await secretsOf(id)).toEqual([next]);
    const audit = await t.db('audit_log').where({ target_id: id, action: 'webhook_endpoint.rotate_secret' }).first();
    expect(audit!.details).toMatchObject({ grace_period_seconds: 86_400, previous_expires_at: res.body.previous_secret_expires_at });
  });

  test('when rotated with 0s, then the old secret stops at once and is deleted', async () => {
    const { id, secret } = await createWebhookEndpoint(t);
    const res = await rotate(id, { grace_period: '0s' });
    expect(res.status).toBe(200);
    expect(res.body.previous_secret_expires_at).toBeNull();
    expect(await secretsOf(id)).toEqual([res.body.secret]);
    expect(await secretsOf(id)).not.toContain(secret);
    expect(await t.db('webhook_endpoint_secrets').where({ endpoint_id: id })).toHaveLength(1);
  });

  test('when rotated again, then the secrets whose grace is over are deleted and the ones within it keep signing, newest first', async () => {
    const { id, secret: s1 } = await createWebhookEndpoint(t);
    const s2 = (await rotate(id, { grace_period: '1h' })).body.secret;
    skewMs = 2 * 3_600_000; // s1's grace is over
    const s3 = (await rotate(id, { grace_period: '7d' })).body.secret;
    expect(await secretsOf(id)).toEqual([s3, s2]);
    expect(await t.db('webhook_endpoint_secrets').where({ endpoint_id: id })).toHaveLength(2);
    expect(await secretsOf(id)).not.toContain(s1);
  });

  test.each([
    [{ grace_period: '8d' }],
    [{ grace_period: '-1h' }],
    [{ grace_period: '24' }],
    [{ grace_period: 3600 }],
    [{ grace_period: '1w' }],
    [{ grace: '1h' }],
  ])('when the body is %j, then 422 and the secret is unchanged', async (body) => {
    const { id, secret } = await createWebhookEndpoint(t);
    expectError(await rotate(id, body), 422, 'VALIDATION_FAILED');
    expect(await secretsOf(id)).toEqual([secret]);
  });

  test('when the grace is at its edges or in seconds, then it is accepted (control)', async () => {
    const { id } = await createWebhookEndpoint(t);
    for (const [grace, seconds] of [
      ['7d', 7 * 86_400],
      ['90s', 90],
      ['30m', 1_800],
      ['0', 0],
    ] as const) {
      const res = await rotate(id, { grace_period: grace });
      expect(res.status).toBe(200);
      const row = await t.db('audit_log').where({ target_id: id, action: 'webhook_endpoint.rotate_secret', request_id: res.headers['x-request-id'] }).first();
      expect(row!.details.grace_period_seconds).toBe(seconds);
    }
  });

  test('when two rotations race, then both succeed one after the other and exactly one secret is current', async () => {
    const { id } = await createWebhookEndpoint(t);
    const [a, b] = await Promise.all([rotate(id, { grace_period: '1h' }), rotate(id, { grace_period: '1h' })]);
    expect([a.status, b.status]).toEqual([200, 200]);
    const current = await t.db('webhook_endpoint_secrets').where({ endpoint_id: id }).whereNull('expires_at');
    expect(current).toHaveLength(1);
    expect((await secretsOf(id))[0]).toBe(t.c.secretBox.open(current[0]!.ciphertext, id));
    expect(await secretsOf(id)).toHaveLength(3);
  });
});
