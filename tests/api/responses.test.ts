/**
 * Real answers of every route, checked against what the route table declares and the OpenAPI
 * document publishes: the status is one the route declares, the content type one declared for that
 * status, the body matches that content type's schema, and declared headers have their shape.
 */
import Stripe from 'stripe';
import request from 'supertest';
import { routeTable } from '../../src/app';
import type { RouteDef } from '../../src/http/route';
import { createCustomer, type CreatedCustomer } from '../helpers/factories';
import { routeName, samples, stripeOnly } from '../helpers/route-samples';
import { consoleHeaders } from '../helpers/console-session';
import { createTestApp, TestApp } from '../helpers/test-app';

const SECRET = 'whsec_responses';
let t: TestApp;
let customer: CreatedCustomer;
beforeAll(async () => {
  t = await createTestApp({ STRIPE_WEBHOOK_SECRET: SECRET });
  customer = await createCustomer(t);
  await request(t.app).post('/api/usage').set('X-API-Key', customer.apiKey).send({ metric: 'api_calls', quantity: 2, idempotency_key: 'r-1' }).expect(201);
});
afterAll(() => t.close());

function call(r: RouteDef, path: string, body: object | undefined, query: Record<string, string> = {}, headers: Record<string, string> = {}) {
  let req = request(t.app)[r.method](path).query(query).set(headers);
  if (r.auth === 'admin' || r.auth === 'metrics') req = req.set('Authorization', `Bearer ${t.adminToken}`);
  if (r.auth === 'customer') req = req.set('X-API-Key', customer.apiKey);
  if (r.auth === 'stripe') {
    const payload = JSON.stringify(body);
    return req
      .set('Content-Type', 'application/json')
      .set('Stripe-Signature', Stripe.webhooks.generateTestHeaderString({ payload, secret: SECRET }))
      .send(payload);
  }
  return body !== undefined ? req.send(body) : req;
}

/** Checks one real answer against the route's declaration; returns the media type it matched. */
function expectDeclared(r: RouteDef, res: request.Response): string | null {
  const spec = r.responses[res.status];
  if (!spec) throw new Error(`${routeName(r)} answered ${res.status}, which it does not declare (${Object.keys(r.responses).join(', ')})`);
  for (const [name, h] of Object.entries(spec.headers ?? {})) {
    // Set-Cookie may come more than once: Node hands its values over as a list; each is checked.
    const raw = res.headers[name.toLowerCase()] as unknown;
    const values = raw === undefined ? [] : Array.isArray(raw) ? (raw as unknown[]) : [raw];
    for (const value of values)
      if (!h.schema.safeParse(value).success) throw new Error(`${routeName(r)}: header ${name}=${String(value)} does not match its schema`);
  }
  if (!spec.content) {
    expect([routeName(r), res.text ?? '']).toEqual([routeName(r), '']);
    return null;
  }
  const mediaType = (res.headers['content-type'] ?? '').split(';')[0]!.trim();
  const declared = Object.keys(spec.content).find((type) => type.split(';')[0]!.trim() === mediaType);
  if (!declared) throw new Error(`${routeName(r)} answered ${res.status} as ${mediaType}, declared: ${Object.keys(spec.content).join(', ')}`);
  const body = mediaType === 'application/json' ? res.body : res.text;
  const parsed = spec.content[declared]!.safeParse(body);
  if (!parsed.success) throw new Error(`${routeName(r)}: ${JSON.stringify(parsed.error.issues.slice(0, 3))}`);
  return declared;
}

test('when every route answers successfully, then the status, content type and body are ones it declares', async () => {
  for (const r of routeTable(t.c)) {
    const s = await samples[routeName(r)]!(t, customer);
    const res = await call(r, s.path, s.body, {}, r.auth === 'console' ? await consoleHeaders(t) : (s.headers ?? {}));
    // Its success is checked with a fake Stripe where it is tested (tests/api/billing-portal.test.ts).
    if (stripeOnly(t, r)) {
      expect([routeName(r), res.status, res.body.error?.code]).toEqual([routeName(r), 409, 'STRIPE_DISABLED']);
      continue;
    }
    expect([routeName(r), res.status < 300]).toEqual([routeName(r), true]);
    expectDeclared(r, res);
  }
});

test('when usage is posted, replayed, posted as a batch and read by day, and the report is read as CSV, then each answer is a declared one', async () => {
  const table = routeTable(t.c);
  const route = (name: string) => table.find((r) => routeName(r) === name)!;
  const post = route('POST /api/usage');
  const event = { metric: 'api_calls', quantity: 1, idempotency_key: 'r-replay' };
  expect((await call(post, '/api/usage', event)).status).toBe(201);
  const replay = await call(post, '/api/usage', event);
  expect([replay.status, replay.headers['idempotent-replayed']]).toEqual([200, 'true']);
  expectDeclared(post, replay);
  const batch = await call(post, '/api/usage', { events: [{ metric: 'api_calls', quantity: 1, idempotency_key: 'r-2' }] });
  expect(batch.status).toBe(201);
  expectDeclared(post, batch);
  const batchReplay = await call(post, '/api/usage', { events: [{ metric: 'api_calls', quantity: 1, idempotency_key: 'r-2' }] });
  expect([batchReplay.status, batchReplay.headers['idempotent-replayed']]).toEqual([200, 'true']);
  expectDeclared(post, batchReplay);

  const get = route('GET /api/usage');
  const byDay = await call(get, '/api/usage', undefined, { group_by: 'day' });
  expectDeclared(get, byDay);
  expect(byDay.body.totals.length).toBeGreaterThan(0);

  const report = route('GET /api/reports/usage');
  const csv = await call(report, '/api/reports/usage', undefined, { format: 'csv' });
  expect(expectDeclared(report, csv)).toBe('text/csv');
  expect(csv.text.split('\n')[0]).toBe('customer_id,metric,quantity,events');
  expect(csv.headers['content-disposition']).toMatch(/^attachment; filename="usage-\d{4}-\d{2}-\d{2}\.csv"$/);
  expect(expectDeclared(report, await call(report, '/api/reports/usage', undefined))).toBe('application/json');
});
