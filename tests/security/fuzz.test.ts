/**
 * Hostile input on every route of the table: random and malicious bodies, query strings and
 * headers never give a 500, and a refused write leaves no row behind.
 */
import fc from 'fast-check';
import request from 'supertest';
import type { z } from 'zod';
import { routeTable } from '../../src/app';
import type { RouteDef } from '../../src/http/route';
import { createCustomer, type CreatedCustomer } from '../helpers/factories';
import { routeName, samples } from '../helpers/route-samples';
import { createTestApp, TestApp } from '../helpers/test-app';
import { consoleHeaders } from '../helpers/console-session';

let t: TestApp;
let customer: CreatedCustomer;
/** A console session's headers (DELETE /api/console/session ends it; its later answers are 401s, which is fine here). */
let consoleSession: Record<string, string>;
beforeAll(async () => {
  t = await createTestApp();
  customer = await createCustomer(t);
  consoleSession = await consoleHeaders(t);
});
afterAll(() => t.close());

const RUNS = 25;
const TABLES = ['customers', 'api_keys', 'usage_events', 'plans', 'subscriptions', 'stripe_events'];

const nasty = fc.constantFrom(
  "'; drop table customers; --",
  '" or 1=1 --',
  '\\x00\\u0000',
  '%27%20OR%201%3D1',
  '$1; select pg_sleep(5)',
  '../../etc/passwd',
  '<script>alert(1)</script>',
  '{{7*7}}',
  '\u202e\ufeff',
  'a'.repeat(10_000),
);
const key = fc.oneof(
  fc.constantFrom(
    '__proto__',
    'constructor',
    'prototype',
    'email',
    'company_name',
    'metric',
    'quantity',
    'events',
    'plan',
    'code',
    'name',
    'entitlements',
    'idempotency_key',
  ),
  fc.string(),
);
const value = fc.letrec<{ v: unknown }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.string(),
    nasty,
    fc.double(),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(key, tie('v'), { maxKeys: 5 }),
  ),
})).v;

function auth(r: RouteDef): Record<string, string> {
  if (r.auth === 'admin' || r.auth === 'metrics') return { Authorization: `Bearer ${t.adminToken}` };
  if (r.auth === 'customer') return { 'X-API-Key': customer.apiKey };
  if (r.auth === 'console') return consoleSession;
  return {};
}

async function counts(): Promise<number[]> {
  const n = await Promise.all(TABLES.map((tbl) => t.db(tbl).count<{ n: string }[]>({ n: '*' })));
  return n.map((r) => Number(r[0]!.n));
}

const writes = () => routeTable(t.c).filter((r) => r.method !== 'get');

test('when write routes get random and malicious bodies, then never a 500, and a refusal writes nothing', async () => {
  for (const r of writes()) {
    const { path } = await samples[routeName(r)]!(t);
    await fc.assert(
      fc.asyncProperty(value, async (body) => {
        const before = await counts();
        const res = await request(t.app)[r.method](path).set(auth(r)).set('Content-Type', 'application/json').send(JSON.stringify(body));
        expect([routeName(r), res.status < 500]).toEqual([routeName(r), true]);
        expect(Object.keys(res.body)).toEqual(res.status >= 400 ? ['error'] : expect.anything());
        if (res.status >= 400) expect([routeName(r), await counts()]).toEqual([routeName(r), before]);
      }),
      { numRuns: RUNS },
    );
  }
}, 120_000);

test('when any route gets random query strings and headers, then never a 500', async () => {
  const headerValue = fc.oneof(fc.string(), nasty).map((s) => s.replace(/[^\x20-\x7e]/g, '').slice(0, 2000));
  for (const r of routeTable(t.c)) {
    const { path } = await samples[routeName(r)]!(t);
    await fc.assert(
      fc.asyncProperty(
        fc.dictionary(fc.string({ minLength: 1, maxLength: 20 }), fc.oneof(fc.string(), nasty)),
        headerValue,
        headerValue,
        async (query, requestId, contentType) => {
          const qs = new URLSearchParams(query).toString();
          const agent = request(t.app);
          const res = await agent[r.method](`${path}?${qs}`)
            .set(auth(r))
            .set('X-Request-Id', requestId)
            .set('Content-Type', contentType || 'application/json')
            .send('{}');
          expect([routeName(r), res.status < 500]).toEqual([routeName(r), true]);
        },
      ),
      { numRuns: 10 },
    );
  }
}, 120_000);

/** Valid strings, but none of them one of our ids: numbers past bigint, signs, exponents, near-UUIDs, NULs. */
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64url');
const NOT_OUR_IDS = [
  '99999999999999999999',
  '9223372036854775808',
  '-1',
  '0',
  '1e5',
  '01900000-0000-7000-8000-00000000000g',
  '01900000-0000-7000-8000-0000000000000',
  '{01900000-0000-7000-8000-000000000000}',
  'a\u0000b',
  '\u0000',
  'evt_1\u0000',
  b64('9999999999999999999'),
  b64('99999999999999999999'),
  b64('-1'),
  b64('0'),
  b64('1e5'),
  b64('01900000-0000-7000-8000-00000000000g'),
];
/**
 * Request ids are the exception: older audit rows hold a client's id of any sane shape, so only a
 * value outside that shape cannot match.
 */
const cannotMatch = (name: string, v: string) => (/request_id$/.test(name) ? !/^[A-Za-z0-9._:-]{1,128}$/.test(v) : name === 'cursor' || name.endsWith('_id'));

test('when an id-like query parameter holds something that cannot be one of our ids, then 422 VALIDATION_FAILED; other parameters never a 500', async () => {
  for (const r of routeTable(t.c)) {
    if (!r.request.query) continue;
    const { path, body } = await samples[routeName(r)]!(t);
    for (const name of Object.keys((r.request.query as z.ZodObject).shape)) {
      for (const v of NOT_OUR_IDS) {
        const res = await request(t.app)
          [r.method](path)
          .query({ [name]: v })
          .set(auth(r))
          .send(body);
        const seen = [routeName(r), name, v, res.status];
        if (cannotMatch(name, v)) expect([...seen, res.body.error?.code]).toEqual([routeName(r), name, v, 422, 'VALIDATION_FAILED']);
        else expect(seen).toEqual([routeName(r), name, v, res.status < 500 ? res.status : 'not a 500']);
        if (res.status >= 400) expect(Object.keys(res.body)).toEqual(['error']);
      }
    }
  }
}, 120_000);

test('when a path id cannot be one of our ids, then 404 in the envelope (a malformed month: 422), never a 500', async () => {
  for (const r of routeTable(t.c).filter((x) => x.path.includes(':'))) {
    const { body } = await samples[routeName(r)]!(t);
    for (const v of NOT_OUR_IDS) {
      const res = await request(t.app)
        [r.method](r.path.replace(/:\w+/g, encodeURIComponent(v)))
        .set(auth(r))
        .send(body);
      // A month (YYYY-MM) is no id: a malformed one is 422 (the usage archive routes), never a 500.
      const expected = r.path.includes(':month') ? [422, 'VALIDATION_FAILED'] : [404, 'NOT_FOUND'];
      expect([routeName(r), v, res.status, res.body.error?.code]).toEqual([routeName(r), v, ...expected]);
    }
  }
}, 120_000);

test('when a path is not valid percent-encoding, then 400 BAD_REQUEST in the envelope, never a 500', async () => {
  for (const r of routeTable(t.c).filter((x) => x.path.includes(':'))) {
    const { body } = await samples[routeName(r)]!(t);
    for (const v of ['%zz', '%E0%A4%A', '%']) {
      const res = await request(t.app)[r.method](r.path.replace(/:\w+/g, v)).set(auth(r)).send(body);
      expect([routeName(r), v, res.status, res.body.error?.code]).toEqual([routeName(r), v, 400, 'BAD_REQUEST']);
    }
  }
});

test('when bodies are deeply nested, oversized, or carry prototype keys, then a clear 4xx', async () => {
  const admin = { Authorization: `Bearer ${t.adminToken}`, 'Content-Type': 'application/json' };
  const deep = `${'['.repeat(50_000)}${']'.repeat(50_000)}`;
  const deepObject = `${'{"a":'.repeat(5_000)}1${'}'.repeat(5_000)}`;
  const cases: [string, string, number, string][] = [
    ['50,000 nested arrays', deep, 422, 'VALIDATION_FAILED'],
    ['5,000 nested objects', deepObject, 422, 'VALIDATION_FAILED'],
    ['a 200 kB field', JSON.stringify({ email: 'x@example.com', company_name: 'x'.repeat(200_000) }), 413, 'PAYLOAD_TOO_LARGE'],
  ];
  for (const [label, body, status, code] of cases) {
    const res = await request(t.app).post('/api/customers').set(admin).send(body);
    expect([label, res.status, res.body.error?.code]).toEqual([label, status, code]);
  }
  for (const proto of [
    '{"__proto__":{"isAdmin":true},"email":"p@example.com","company_name":"P"}',
    '{"constructor":{"prototype":{"x":1}},"email":"c@example.com","company_name":"C"}',
  ]) {
    const res = await request(t.app).post('/api/customers').set(admin).send(proto);
    expect(res.status).toBe(422);
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
  }
});

test('when string fields carry SQL metacharacters, then they are stored as plain text and nothing else changes', async () => {
  const admin = { Authorization: `Bearer ${t.adminToken}` };
  const evil = "Robert'); DROP TABLE customers; --";
  const res = await request(t.app)
    .post('/api/customers')
    .set(admin)
    .send({ email: `x${Date.now()}@example.com`, company_name: evil });
  expect(res.status).toBe(201);
  expect((await t.db('customers').where({ id: res.body.customer.id }).first())!.company_name).toBe(evil);
  const usage = await request(t.app)
    .post('/api/usage')
    .set('X-API-Key', res.body.api_key)
    .send({ metric: 'api_calls', quantity: 1, idempotency_key: "k'; DELETE FROM usage_events; --" });
  expect(usage.status).toBe(201);
  const found = await request(t.app).get('/api/customers').query({ email: "' OR '1'='1" }).set(admin);
  expect(found.body.data).toEqual([]);
  expect(await t.db('customers').count({ n: '*' })).not.toEqual([{ n: '0' }]);
});
