/**
 * `Cache-Control: no-store` on every answer that carries a key, a secret or a license, checked over
 * the whole route table: each route's sample request is sent, and an answer whose body holds a
 * customer key, a signed license or a field that names one must carry the header, and its route
 * must declare it (`noStore`). A route added later is checked without anyone remembering to.
 */
import request from 'supertest';
import { routeTable } from '../../src/app';
import { type RouteDef, successStatuses } from '../../src/http/route';
import { createCustomer, type CreatedCustomer } from '../helpers/factories';
import { routeName as name, samples, stripeOnly } from '../helpers/route-samples';
import { consoleHeaders } from '../helpers/console-session';
import { createTestApp, type TestApp } from '../helpers/test-app';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ API_DOCS: 'admin' });
});
afterAll(() => t.close());

const KEY = /cust_[0-9a-f-]{36}_[A-Za-z0-9_-]{43}/;
const JWT = /eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/;
const SECRET_FIELD = /^(api_key|license|secret|token|password|private_key)$/;

/** A key or a license anywhere in the text, or a field that names one holding a string. */
function carriesSecret(text: string, body: unknown): boolean {
  if (KEY.test(text) || JWT.test(text)) return true;
  const walk = (v: unknown): boolean =>
    Array.isArray(v)
      ? v.some(walk)
      : v !== null && typeof v === 'object' && Object.entries(v).some(([k, x]) => (SECRET_FIELD.test(k) && typeof x === 'string' && x !== '') || walk(x));
  return walk(body);
}

async function answer(r: RouteDef, caller: CreatedCustomer) {
  const sample = await samples[name(r)]!(t, caller);
  let req = request(t.app)
    [r.method](sample.path)
    .set(r.auth === 'console' ? await consoleHeaders(t) : (sample.headers ?? {}));
  if (r.auth === 'admin' || r.auth === 'metrics') req = req.set('Authorization', `Bearer ${t.adminToken}`);
  if (r.auth === 'customer') req = req.set('X-API-Key', caller.apiKey);
  return sample.body !== undefined ? req.send(sample.body) : req;
}

const routes = () => routeTable(t.c).filter((r) => r.auth !== 'stripe');

/**
 * Public documents that are signed for everyone to read (the root-signed license key set): a JWS, but
 * no secret and no license; they are meant to be cached (checked below).
 */
const PUBLIC_SIGNED = new Set(['GET /.well-known/license-keys']);

test('when every route answers its sample request, then each answer carrying a key, a secret or a license has Cache-Control: no-store, and its route declares it', async () => {
  const carrying: string[] = [];
  const problems: string[] = [];
  for (const r of routes()) {
    const caller = await createCustomer(t);
    const res = await answer(r, caller);
    // Stripe is off here: its refusal must still be no-store; its success is checked in tests/api/billing-portal.test.ts.
    if (stripeOnly(t, r)) {
      if (res.status !== 409 || res.headers['cache-control'] !== 'no-store')
        problems.push(`${name(r)}: Stripe off, answered ${res.status} ${res.headers['cache-control']}`);
      continue;
    }
    if (!successStatuses(r).includes(res.status)) {
      problems.push(`${name(r)}: sample answered ${res.status}`);
      continue;
    }
    const text = res.text ?? JSON.stringify(res.body);
    if (PUBLIC_SIGNED.has(name(r))) {
      if (r.auth !== 'public' || r.noStore || !/^public, max-age=\d+$/.test(String(res.headers['cache-control'])))
        problems.push(`${name(r)}: a public signed document must be public and cacheable`);
      continue;
    }
    if (carriesSecret(text, res.body)) {
      carrying.push(name(r));
      if (res.headers['cache-control'] !== 'no-store') problems.push(`${name(r)}: carries a secret without Cache-Control: no-store`);
      if (!r.noStore) problems.push(`${name(r)}: carries a secret and does not declare noStore`);
    }
    if (r.noStore && res.headers['cache-control'] !== 'no-store') problems.push(`${name(r)}: declares noStore, answered without it`);
  }
  expect(problems).toEqual([]);
  // The answers known to carry one (a route that stops carrying it is noticed too).
  expect(carrying).toEqual(
    expect.arrayContaining([
      'POST /api/customers',
      'POST /api/customers/:id/keys',
      'POST /api/keys/rotate',
      'GET /api/licenses',
      'POST /api/customers/:id/licenses',
    ]),
  );
}, 120_000);

test('when a route answers nothing secret, then it keeps its cacheability (control)', async () => {
  const r = routes().find((x) => name(x) === 'GET /api/customers')!;
  expect(r.noStore).toBeFalsy();
  const res = await answer(r, await createCustomer(t));
  expect(res.status).toBe(200);
  expect(res.headers['cache-control']).toBeUndefined();
});

test('when a route that carries a secret refuses a request, then its error answer is no-store too', async () => {
  const res = await request(t.app).post('/api/customers').set('Authorization', `Bearer ${t.adminToken}`).send({ email: 'not an email' });
  expect(res.status).toBe(422);
  expect(res.headers['cache-control']).toBe('no-store');
});
