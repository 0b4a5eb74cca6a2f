/** Real responses of every route, checked against the schemas the OpenAPI document publishes. */
import Stripe from 'stripe';
import request from 'supertest';
import { routeTable } from '../../src/app';
import type { RouteDef } from '../../src/http/route';
import { createCustomer, type CreatedCustomer } from '../helpers/factories';
import { routeName, samples } from '../helpers/route-samples';
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

function call(r: RouteDef, path: string, body: object | undefined) {
  let req = request(t.app)[r.method](path);
  if (r.auth === 'admin' || r.auth === 'metrics') req = req.set('Authorization', `Bearer ${t.adminToken}`);
  if (r.auth === 'customer') req = req.set('X-API-Key', customer.apiKey);
  if (r.auth === 'stripe') {
    const payload = JSON.stringify(body);
    return req.set('Content-Type', 'application/json').set('Stripe-Signature', Stripe.webhooks.generateTestHeaderString({ payload, secret: SECRET })).send(payload);
  }
  return body !== undefined ? req.send(body) : req;
}

test('when every route answers successfully, then its body matches the documented response schema', async () => {
  for (const r of routeTable(t.c)) {
    const s = await samples[routeName(r)]!(t);
    const res = await call(r, s.path, s.body);
    expect([routeName(r), res.status < 300]).toEqual([routeName(r), true]);
    const body = res.headers['content-type']?.startsWith('application/json') ? res.body : res.status === 204 ? undefined : res.text;
    const parsed = r.response.safeParse(body);
    if (!parsed.success) throw new Error(`${routeName(r)}: ${JSON.stringify(parsed.error.issues.slice(0, 3))}`);
  }
});

test('when usage is posted as a batch or read by day, then those shapes match too', async () => {
  const post = routeTable(t.c).find((r) => routeName(r) === 'POST /api/usage')!;
  const batch = await request(t.app).post('/api/usage').set('X-API-Key', customer.apiKey).send({ events: [{ metric: 'api_calls', quantity: 1, idempotency_key: 'r-2' }] });
  expect(post.response.safeParse(batch.body).success).toBe(true);
  const get = routeTable(t.c).find((r) => routeName(r) === 'GET /api/usage')!;
  const byDay = await request(t.app).get('/api/usage').query({ group_by: 'day' }).set('X-API-Key', customer.apiKey);
  expect(get.response.safeParse(byDay.body).success).toBe(true);
  expect(byDay.body.totals.length).toBeGreaterThan(0);
});
