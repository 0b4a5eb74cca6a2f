import request from 'supertest';
import { expectError } from '../helpers/envelope';
import { createCustomer, uniqueEmail } from '../helpers/factories';
import { createTestApp, TestApp } from '../helpers/test-app';

let t: TestApp;
let admin: Record<string, string>;
beforeAll(async () => {
  t = await createTestApp();
  admin = { Authorization: `Bearer ${t.adminToken}` };
});
afterAll(() => t.close());

const countByEmail = async (email: string) => Number((await t.db('customers').whereRaw('lower(email) = lower(?)', [email]).count({ n: '*' }))[0]!.n);

describe('POST /api/customers', () => {
  test('when an admin creates a customer, then it is stored with one active key shown this once', async () => {
    const email = uniqueEmail();
    const res = await request(t.app).post('/api/customers').set(admin).send({ email, company_name: 'Acme' });
    expect(res.status).toBe(201);
    expect(res.body.customer).toMatchObject({ email, company_name: 'Acme', status: 'active', stripe_customer_id: null });
    expect(res.body.api_key).toMatch(new RegExp(`^cust_${res.body.customer.id}_[A-Za-z0-9_-]{43}$`));
    expect(res.body.key).toMatchObject({ status: 'active', revoked_at: null });
    expect(res.body.key.start).toBe(res.body.api_key.slice(0, res.body.key.start.length));

    const keys = await t.db('api_keys').where({ customer_id: res.body.customer.id });
    expect(keys).toHaveLength(1);
    expect(keys[0]!.secret_hash).toMatch(/^\$2[aby]\$04\$/);
    const me = await request(t.app).get('/api/me').set('X-API-Key', res.body.api_key);
    expect(me.status).toBe(200);
    expect(me.body.customer.id).toBe(res.body.customer.id);
  });

  test('when the email differs only in case from an existing customer, then 409 EMAIL_TAKEN and no row', async () => {
    const email = uniqueEmail('Case');
    await createCustomer(t, { email });
    const res = await request(t.app).post('/api/customers').set(admin).send({ email: email.toUpperCase(), company_name: 'X' });
    expectError(res, 409, 'EMAIL_TAKEN');
    expect(await countByEmail(email)).toBe(1);
  });

  test('when the same email is created twenty times at once, then exactly one succeeds', async () => {
    const email = uniqueEmail('race');
    const results = await Promise.all(Array.from({ length: 20 }, () => request(t.app).post('/api/customers').set(admin).send({ email, company_name: 'R' })));
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(results.filter((r) => r.status === 409)).toHaveLength(19);
    expect(await countByEmail(email)).toBe(1);
  });

  const post = () => request(t.app).post('/api/customers').set(admin);
  const json = (o: unknown) =>
    post()
      .set('Content-Type', 'application/json')
      .send(typeof o === 'string' ? o : JSON.stringify(o));
  // Each case gets a fresh email and company name, so "no row" is checked for exactly that request.
  type Send = (email: string, company: string) => request.Test;
  const bad: [string, Send, number, string][] = [
    ['the email is missing', (_e, co) => post().send({ company_name: co }), 422, 'VALIDATION_FAILED'],
    ['the email is invalid', (_e, co) => post().send({ email: 'not-an-email', company_name: co }), 422, 'VALIDATION_FAILED'],
    ['the email is not a string', (_e, co) => post().send({ email: 42, company_name: co }), 422, 'VALIDATION_FAILED'],
    ['the company name is empty', (e) => post().send({ email: e, company_name: '  ' }), 422, 'VALIDATION_FAILED'],
    ['the company name holds control characters', (e, co) => post().send({ email: e, company_name: `${co}\u0000` }), 422, 'VALIDATION_FAILED'],
    ['there is an unknown field', (e, co) => post().send({ email: e, company_name: co, status: 'deleted' }), 422, 'VALIDATION_FAILED'],
    ['the body has a __proto__ key', (e, co) => json(`{"email":"${e}","company_name":"${co}","__proto__":{"admin":true}}`), 422, 'VALIDATION_FAILED'],
    ['the body has a constructor key', (e, co) => json({ email: e, company_name: co, constructor: { prototype: {} } }), 422, 'VALIDATION_FAILED'],
    ['the body is an array', (e, co) => post().send([{ email: e, company_name: co }]), 422, 'VALIDATION_FAILED'],
    ['the body is JSON null', () => json('null'), 400, 'INVALID_JSON'],
    ['the JSON is malformed', (e, co) => json(`{"email": "${e}", "company_name": "${co}",`), 400, 'INVALID_JSON'],
    ['the body is over the size limit', (e, co) => post().send({ email: e, company_name: co, pad: 'x'.repeat(200_000) }), 413, 'PAYLOAD_TOO_LARGE'],
    ['the content type is form data', (e, co) => post().type('form').send({ email: e, company_name: co }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
    [
      'the content type is text',
      (e, co) =>
        post()
          .set('Content-Type', 'text/plain')
          .send(JSON.stringify({ email: e, company_name: co })),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    ],
    ['there is no body at all', () => post(), 422, 'VALIDATION_FAILED'],
  ];

  test.each(bad)('when %s, then a clear 4xx and no row is written', async (_label, send, status, code) => {
    const email = uniqueEmail('bad');
    const company = `Bad body ${email}`;
    const res = await send(email, company);
    expectError(res, status, code);
    expect(await countByEmail(email)).toBe(0);
    expect(await t.db('customers').where({ company_name: company }).count({ n: '*' })).toEqual([{ n: '0' }]);
    expect(await t.db('audit_log').where({ request_id: res.headers['x-request-id'], outcome: 'success' })).toEqual([]);
  });

  test('when validation fails, then the details name each bad field', async () => {
    const res = await request(t.app).post('/api/customers').set(admin).send({ email: 'nope', extra: 1 });
    expectError(res, 422, 'VALIDATION_FAILED');
    const paths = res.body.error.details.map((d: { path: string }) => d.path);
    expect(paths).toEqual(expect.arrayContaining(['email', 'company_name']));
    expect(JSON.stringify(res.body.error.details)).toContain('extra');
  });
});

describe('GET /api/customers', () => {
  test('when listing with a small limit, then pages follow the cursor newest first without overlap', async () => {
    const tag = uniqueEmail('page').split('@')[0]!;
    const made: { id: string }[] = [];
    for (let i = 0; i < 5; i++) made.push(await createCustomer(t, { email: `${tag}-${i}@example.com` }));
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: request.Response = await request(t.app)
        .get('/api/customers')
        .query({ limit: 2, ...(cursor ? { cursor } : {}) })
        .set(admin);
      expect(res.status).toBe(200);
      expect(res.body.data.length).toBeLessThanOrEqual(2);
      seen.push(...res.body.data.map((c: { id: string }) => c.id));
      cursor = res.body.next_cursor;
    } while (cursor && !made.every((m) => seen.includes(m.id)));
    const mine = seen.filter((id) => made.some((m) => m.id === id));
    expect(mine).toEqual(made.map((m) => m.id).reverse());
    expect(new Set(seen).size).toBe(seen.length);
  });

  test('when filtering by email in another case, then only that customer is returned', async () => {
    const c = await createCustomer(t);
    const res = await request(t.app).get('/api/customers').query({ email: c.email.toUpperCase() }).set(admin);
    expect(res.status).toBe(200);
    expect(res.body.data.map((x: { id: string }) => x.id)).toEqual([c.id]);
  });

  test('when filtering by status, then only customers with that status are returned', async () => {
    const c = await createCustomer(t);
    await request(t.app).delete(`/api/customers/${c.id}`).set(admin).expect(200);
    const deleted = await request(t.app).get('/api/customers').query({ status: 'deleted', limit: 200 }).set(admin);
    expect(deleted.body.data.every((x: { status: string }) => x.status === 'deleted')).toBe(true);
    expect(deleted.body.data.map((x: { id: string }) => x.id)).toContain(c.id);
    const active = await request(t.app).get('/api/customers').query({ status: 'active', limit: 200 }).set(admin);
    expect(active.body.data.map((x: { id: string }) => x.id)).not.toContain(c.id);
  });

  test.each([[{ limit: '0' }], [{ limit: 'many' }], [{ status: 'gone' }], [{ cursor: 'not-a-cursor' }], [{ unknown: 'x' }]])(
    'when the query is %j, then 422 VALIDATION_FAILED',
    async (query) => {
      expectError(await request(t.app).get('/api/customers').query(query).set(admin), 422, 'VALIDATION_FAILED');
    },
  );
});

describe('GET, PATCH, DELETE /api/customers/:id', () => {
  test('when the id is unknown or malformed, then 404 NOT_FOUND', async () => {
    expectError(await request(t.app).get('/api/customers/01900000-0000-7000-8000-000000000000').set(admin), 404, 'NOT_FOUND');
    expectError(await request(t.app).get('/api/customers/1%27%20or%201=1').set(admin), 404, 'NOT_FOUND');
    expectError(await request(t.app).patch('/api/customers/nope').set(admin).send({ company_name: 'x' }), 404, 'NOT_FOUND');
    expectError(await request(t.app).delete('/api/customers/01900000-0000-7000-8000-000000000000').set(admin), 404, 'NOT_FOUND');
  });

  test('when an admin patches a customer, then the change is stored and audited with field names only', async () => {
    const c = await createCustomer(t);
    const email = uniqueEmail('new');
    const res = await request(t.app).patch(`/api/customers/${c.id}`).set(admin).send({ email, company_name: 'Renamed' });
    expect(res.status).toBe(200);
    expect(res.body.customer).toMatchObject({ id: c.id, email, company_name: 'Renamed' });
    const row = await t.db('customers').where({ id: c.id }).first();
    expect(row).toMatchObject({ email, company_name: 'Renamed' });
    const audit = (await t.db('audit_log').where({ action: 'customer.update', target_id: c.id }).first())!;
    expect(audit.details).toEqual({ fields: ['email', 'company_name'] });
  });

  test('when a patch takes an email in use, then 409 and nothing changes', async () => {
    const a = await createCustomer(t);
    const b = await createCustomer(t);
    expectError(await request(t.app).patch(`/api/customers/${b.id}`).set(admin).send({ email: a.email.toUpperCase() }), 409, 'EMAIL_TAKEN');
    expect((await t.db('customers').where({ id: b.id }).first())!.email).toBe(b.email);
  });

  test('when a patch is empty or has unknown fields, then 422 and nothing changes', async () => {
    const c = await createCustomer(t);
    expectError(await request(t.app).patch(`/api/customers/${c.id}`).set(admin).send({}), 422, 'VALIDATION_FAILED');
    expectError(await request(t.app).patch(`/api/customers/${c.id}`).set(admin).send({ status: 'deleted' }), 422, 'VALIDATION_FAILED');
    expect((await t.db('customers').where({ id: c.id }).first())!.status).toBe('active');
  });

  test('when a customer is deleted, then it is soft-deleted, every key revoked, audit rows kept', async () => {
    const c = await createCustomer(t);
    const second = await request(t.app).post(`/api/customers/${c.id}/keys`).set(admin).send({ keep_existing: true });
    await request(t.app).get('/api/me').set('X-API-Key', c.apiKey).expect(200);
    const res = await request(t.app).delete(`/api/customers/${c.id}`).set(admin);
    expect(res.status).toBe(200);
    expect(res.body.customer).toMatchObject({ id: c.id, status: 'deleted' });
    expect(res.body.customer.deleted_at).not.toBeNull();

    const keys = await t.db('api_keys').where({ customer_id: c.id });
    expect(keys).toHaveLength(2);
    expect(keys.every((k) => k.revoked_at !== null)).toBe(true);
    expectError(await request(t.app).get('/api/me').set('X-API-Key', c.apiKey), 401, 'UNAUTHORIZED');
    expectError(await request(t.app).get('/api/me').set('X-API-Key', second.body.api_key), 401, 'UNAUTHORIZED');

    expect(await t.db('customers').where({ id: c.id }).first()).toMatchObject({ status: 'deleted' });
    const audit = await t.db('audit_log').where({ target_id: c.id }).orderBy('id');
    expect(audit.map((a) => a.action)).toEqual(expect.arrayContaining(['customer.create', 'customer.delete']));

    // Deleting again changes nothing; patching or issuing keys for it is refused.
    expect((await request(t.app).delete(`/api/customers/${c.id}`).set(admin)).status).toBe(200);
    expectError(await request(t.app).patch(`/api/customers/${c.id}`).set(admin).send({ company_name: 'x' }), 409, 'CUSTOMER_DELETED');
    expectError(await request(t.app).post(`/api/customers/${c.id}/keys`).set(admin).send({}), 409, 'CUSTOMER_DELETED');
  });

  test("when a deleted customer's email is used again, then a new customer can be created with it", async () => {
    const c = await createCustomer(t);
    await request(t.app).delete(`/api/customers/${c.id}`).set(admin).expect(200);
    const again = await request(t.app).post('/api/customers').set(admin).send({ email: c.email, company_name: 'Again' });
    expect(again.status).toBe(201);
    expect(again.body.customer.id).not.toBe(c.id);
  });
});

describe('searching customers (q): the console’s search box', () => {
  const tag = `srch${Date.now().toString(36)}`;
  const made: Record<string, string> = {};
  beforeAll(async () => {
    for (const [key, email, company] of [
      ['acme', `ops@${tag}-acme.example`, `Acme ${tag} GmbH`],
      ['globex', `billing@${tag}-globex.example`, `Globex ${tag}`],
      ['percent', `x@${tag}-pct.example`, `100% ${tag} Ltd`],
      ['under', `y@${tag}-under.example`, `a_b ${tag}`],
    ] as const) {
      const res = await request(t.app).post('/api/customers').set(admin).send({ email, company_name: company });
      made[key] = res.body.customer.id;
    }
  });
  const search = async (q: string, extra: Record<string, string> = {}) => {
    const res = await request(t.app)
      .get('/api/customers')
      .query({ q, ...extra })
      .set(admin);
    expect(res.status).toBe(200);
    return res.body as { data: { id: string }[]; next_cursor: string | null };
  };
  const ids = async (q: string) => (await search(q)).data.map((c) => c.id);

  test('when q is part of a company name or an email, in any case, then those customers, newest first', async () => {
    expect(await ids(`ACME ${tag.toUpperCase()}`)).toEqual([made.acme]);
    expect(await ids(`${tag}-GLOBEX`)).toEqual([made.globex]);
    expect(await ids(tag)).toEqual([made.under, made.percent, made.globex, made.acme]);
  });

  test('when q is a customer id, then that customer alone; an id of nobody finds nothing', async () => {
    expect(await ids(made.globex!)).toEqual([made.globex]);
    expect(await ids(made.globex!.toUpperCase())).toEqual([made.globex]);
    expect(await ids('01900000-0000-7000-8000-000000000000')).toEqual([]);
  });

  test('when q holds % or _, then they match themselves, not anything', async () => {
    expect(await ids(`100% ${tag}`)).toEqual([made.percent]);
    expect(await ids(`a_b ${tag}`)).toEqual([made.under]);
    expect(await ids(`%${tag}`)).toEqual([]);
    // Unescaped, _ would match the b of "a_b".
    expect(await ids(`_ ${tag}`)).toEqual([]);
    expect(await ids(`_b ${tag}`)).toEqual([made.under]);
  });

  test('when the matches span pages, then the cursor walks them all once', async () => {
    const first = await search(tag, { limit: '3' });
    expect(first.data).toHaveLength(3);
    const second = await search(tag, { limit: '3', cursor: first.next_cursor! });
    expect([...first.data, ...second.data].map((c) => c.id)).toEqual([made.under, made.percent, made.globex, made.acme]);
    expect(second.next_cursor).toBeNull();
  });

  test('when q holds a control character, then 422; an empty q lists everyone', async () => {
    expectError(await request(t.app).get('/api/customers').query({ q: 'a\u0000b' }).set(admin), 422, 'VALIDATION_FAILED');
    expect((await search('')).data.length).toBeGreaterThan(0);
  });
});
