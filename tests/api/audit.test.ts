import request from 'supertest';
import { expectError } from '../helpers/envelope';
import { createCustomer, issueKey, wrongSecretKey } from '../helpers/factories';
import { createTestApp, TestApp } from '../helpers/test-app';

let t: TestApp;
let admin: Record<string, string>;
beforeAll(async () => {
  t = await createTestApp();
  admin = { Authorization: `Bearer ${t.adminToken}` };
});
afterAll(() => t.close());

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64url');
const rowsFor = (requestId: string | undefined) => t.db('audit_log').where({ request_id: requestId }).orderBy('id');

describe('what is audited', () => {
  test('when each authentication fails, then each failure is one row with its reason, ip and request id', async () => {
    const c = await createCustomer(t);
    const cases: [Record<string, string>, string, string][] = [
      [{}, 'auth.customer_key', 'missing'],
      [{ 'X-API-Key': 'garbage' }, 'auth.customer_key', 'malformed'],
      [{ 'X-API-Key': wrongSecretKey(c.id) }, 'auth.customer_key', 'unknown_key'],
      [{ 'X-API-Key': `${c.apiKey.slice(0, -1)}${c.apiKey.endsWith('A') ? 'B' : 'A'}` }, 'auth.customer_key', 'wrong_secret'],
      [{ 'X-API-Key': wrongSecretKey('01900000-0000-7000-8000-000000000000') }, 'auth.customer_key', 'unknown_key'],
    ];
    for (const [headers, action, reason] of cases) {
      const res = await request(t.app).get('/api/me').set(headers);
      expect(res.status).toBe(401);
      const rows = await rowsFor(res.headers['x-request-id']);
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ actor: 'customer', action, outcome: 'failure', details: { reason } });
      expect(rows[0]!.ip).toMatch(/127\.0\.0\.1/);
    }
    for (const headers of [{}, { Authorization: 'Bearer wrong' }]) {
      const res = await request(t.app).get('/api/customers').set(headers);
      const rows = await rowsFor(res.headers['x-request-id']);
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ actor: 'admin', action: 'auth.admin_token', outcome: 'failure' });
    }
  });

  test('when the same bad key is retried, then every attempt is still audited', async () => {
    const key = wrongSecretKey((await createCustomer(t)).id);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await request(t.app).get('/api/me').set('X-API-Key', key)).headers['x-request-id']!);
    const rows = await t.db('audit_log').whereIn('request_id', ids);
    expect(rows).toHaveLength(3);
  });

  test('when a key succeeds many times, then one success row is written per cache fill (sampled), not per request', async () => {
    const c = await createCustomer(t);
    for (let i = 0; i < 10; i++) await request(t.app).get('/api/me').set('X-API-Key', c.apiKey).expect(200);
    const rows = await t.db('audit_log').where({ action: 'auth.customer_key', outcome: 'success', target_id: c.keyId });
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ actor: 'customer', actor_id: c.id, details: { verified_by: 'bcrypt' } });
  });

  test('when admins act, then each action is a row with the actor fingerprint, never the token', async () => {
    const c = await createCustomer(t);
    await issueKey(t, c.id, { grace_period_seconds: 30 });
    await request(t.app).patch(`/api/customers/${c.id}`).set(admin).send({ company_name: 'Changed' }).expect(200);
    await request(t.app).delete(`/api/customers/${c.id}`).set(admin).expect(200);
    const rows = await t
      .db('audit_log')
      .where({ actor: 'admin' })
      .andWhere((w) => void w.where({ target_id: c.id }).orWhereRaw("details->>'customer_id' = ?", [c.id]))
      .orderBy('id');
    expect(rows.map((r) => r.action)).toEqual(['customer.create', 'api_key.issue', 'api_key.issue', 'customer.update', 'customer.delete']);
    for (const r of rows) {
      expect(r.outcome).toBe('success');
      expect(r.actor_id).toMatch(/^admin:[0-9a-f]{12}$/);
      expect(JSON.stringify(r)).not.toContain(t.adminToken);
    }
    expect(rows[2]!.details).toMatchObject({ mode: 'rotate', grace_period_seconds: 30, ended_key_ids: [c.keyId] });
  });

  test('when an admin action fails, then the failed attempt is audited with its error code', async () => {
    const res = await request(t.app).patch('/api/customers/01900000-0000-7000-8000-000000000000').set(admin).send({ company_name: 'x' });
    expect(res.status).toBe(404);
    const rows = await rowsFor(res.headers['x-request-id']);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ actor: 'admin', action: 'customer.update', outcome: 'failure', details: { code: 'NOT_FOUND' } });
  });
});

describe('request ids in audit rows', () => {
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

  test('when a caller sends another request’s id as X-Request-Id, then its row gets our own id, and the client’s is kept beside it', async () => {
    const first = await request(t.app).get('/api/me');
    const victim = first.headers['x-request-id']!;
    expect(victim).toMatch(UUID);
    const reuse = await request(t.app).get('/api/me').set('X-Request-Id', victim);
    const ours = reuse.headers['x-request-id']!;
    expect(ours).toMatch(UUID);
    expect(ours).not.toBe(victim);
    expect(reuse.body.error.requestId).toBe(ours);

    const victimRows = await rowsFor(victim);
    expect(victimRows).toHaveLength(1);
    expect(victimRows[0]!.client_request_id).toBeNull();
    const reuseRows = await rowsFor(ours);
    expect(reuseRows).toHaveLength(1);
    expect(reuseRows[0]).toMatchObject({ action: 'auth.customer_key', request_id: ours, client_request_id: victim });
  });

  test('when an admin change carries a client id, then the row written with the change holds both ids, and the audit log filters by either', async () => {
    const clientId = `deploy-42:step.${Date.now()}`;
    const res = await request(t.app)
      .post('/api/customers')
      .set(admin)
      .set('X-Request-Id', clientId)
      .send({ email: `rid-${Date.now()}@example.com`, company_name: 'Rid' });
    expect(res.status).toBe(201);
    const ours = res.headers['x-request-id']!;
    const [row] = await t.db('audit_log').where({ action: 'customer.create', target_id: res.body.customer.id });
    expect(row).toMatchObject({ request_id: ours, client_request_id: clientId });

    const byClient = await request(t.app).get('/api/audit').query({ client_request_id: clientId }).set(admin);
    expect(byClient.status).toBe(200);
    // The customer and its first key: two rows, one request.
    const sameRequest = (await rowsFor(ours)).map((r) => r.id).reverse();
    expect(sameRequest).toContain(row!.id);
    expect(byClient.body.data.map((r: { id: string }) => r.id)).toEqual(sameRequest);
    for (const r of byClient.body.data) expect(r).toMatchObject({ request_id: ours, client_request_id: clientId });
    const byOurs = await request(t.app).get('/api/audit').query({ request_id: ours }).set(admin);
    expect(byOurs.body.data.map((r: { id: string }) => r.id)).toEqual(sameRequest);
    expect((await request(t.app).get('/api/audit').query({ request_id: clientId }).set(admin)).body.data).toEqual([]);
  });

  test.each([['x'.repeat(129)], ['has spaces'], ['<script>']])('when the client id is %j, then it is not kept', async (incoming) => {
    const res = await request(t.app).get('/api/me').set('X-Request-Id', incoming);
    const rows = await rowsFor(res.headers['x-request-id']);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.client_request_id).toBeNull();
  });

  test.each([[{ client_request_id: 'has spaces' }], [{ client_request_id: 'x'.repeat(129) }], [{ client_request_id: 'a\u0000' }]])(
    'when filtering by client id %j, then 422',
    async (query) => {
      expectError(await request(t.app).get('/api/audit').query(query).set(admin), 422, 'VALIDATION_FAILED');
    },
  );
});

describe('GET /api/audit', () => {
  test('when filtered by customer, action and outcome, then only matching rows come back, newest first', async () => {
    const c = await createCustomer(t);
    await issueKey(t, c.id, { keep_existing: true });
    const res = await request(t.app).get('/api/audit').query({ customer_id: c.id, action: 'api_key.issue', outcome: 'success' }).set(admin);
    expect(res.status).toBe(200);
    expect(res.body.data).toHaveLength(2);
    expect(res.body.data[0].details.mode).toBe('add');
    expect(res.body.data[1].details.mode).toBe('initial');
    expect(Number(res.body.data[0].id)).toBeGreaterThan(Number(res.body.data[1].id));
  });

  test('when paging with a cursor, then pages do not overlap and end', async () => {
    const c = await createCustomer(t);
    for (let i = 0; i < 3; i++) await issueKey(t, c.id, { keep_existing: i < 1 });
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: request.Response = await request(t.app)
        .get('/api/audit')
        .query({ customer_id: c.id, limit: 2, ...(cursor ? { cursor } : {}) })
        .set(admin);
      seen.push(...res.body.data.map((r: { id: string }) => r.id));
      cursor = res.body.next_cursor;
    } while (cursor);
    const all = await t.db('audit_log').where({ target_id: c.id }).orWhereRaw("details->>'customer_id' = ?", [c.id]).orWhere({ actor_id: c.id });
    expect(seen.sort()).toEqual(all.map((r) => r.id).sort());
  });

  test('when filtered by time and request id, then the window is respected', async () => {
    const res = await request(t.app).get('/api/me');
    const rid = res.headers['x-request-id'];
    const hit = await request(t.app)
      .get('/api/audit')
      .query({ request_id: rid, from: new Date(Date.now() - 60_000).toISOString() })
      .set(admin);
    expect(hit.body.data).toHaveLength(1);
    const miss = await request(t.app)
      .get('/api/audit')
      .query({ request_id: rid, to: new Date(Date.now() - 60_000).toISOString() })
      .set(admin);
    expect(miss.body.data).toHaveLength(0);
  });

  test('when the cursor is the largest id PostgreSQL can hold, then the page is read from there', async () => {
    const res = await request(t.app)
      .get('/api/audit')
      .query({ cursor: b64('9223372036854775807'), limit: 1 })
      .set(admin);
    expect(res.status).toBe(200);
    expect(res.body.data).toHaveLength(1);
  });

  test('when filtered by the ids an audit row holds, then each filter is accepted and matches', async () => {
    const c = await createCustomer(t);
    const created = (await t.db('audit_log').where({ action: 'customer.create', target_id: c.id }).first())!;
    for (const query of [{ target_id: c.id }, { actor_id: created.actor_id }, { customer_id: c.id }, { request_id: created.request_id }] as Record<
      string,
      string
    >[]) {
      const res = await request(t.app)
        .get('/api/audit')
        .query({ ...query, action: 'customer.create' })
        .set(admin);
      expect([query, res.status]).toEqual([query, 200]);
      expect(res.body.data.map((r: { id: string }) => r.id)).toContain(created.id);
      // Only the admin's own fingerprint is shared by other rows.
      if (!query.actor_id) expect(res.body.data).toHaveLength(1);
    }
  });

  test.each([
    [{ actor: 'robot' }],
    [{ from: 'yesterday' }],
    [{ limit: '1000' }],
    [{ cursor: 'abc' }],
    [{ outcome: 'maybe' }],
    [{ cursor: '99999999999999999999' }],
    [{ cursor: b64('9223372036854775808') }],
    [{ cursor: b64('9999999999999999999') }],
    [{ cursor: b64('99999999999999999999') }],
    [{ cursor: b64('-1') }],
    [{ cursor: b64('0') }],
    [{ cursor: b64('1e5') }],
    [{ customer_id: '1e5' }],
    [{ customer_id: '01900000-0000-7000-8000-00000000000g' }],
    [{ target_id: '-1' }],
    [{ target_id: 'a\u0000b' }],
    [{ actor_id: '99999999999999999999' }],
    [{ actor_id: 'admin:xyz' }],
    [{ request_id: 'a b' }],
    [{ request_id: '\u0000' }],
    [{ action: 'x\u0000' }],
  ])('when the query is %j, then 422', async (query) => {
    expectError(await request(t.app).get('/api/audit').query(query).set(admin), 422, 'VALIDATION_FAILED');
  });
});
