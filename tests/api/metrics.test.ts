import request from 'supertest';
import { expectError } from '../helpers/envelope';
import { createCustomer } from '../helpers/factories';
import { createTestApp, newAdminToken, TestApp } from '../helpers/test-app';

const metricsToken = newAdminToken();
let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ METRICS_TOKEN: metricsToken, RATE_LIMIT_ADMIN: '3/1m', TRUST_PROXY: '1' });
});
afterAll(() => t.close());

const scrape = (token = metricsToken) => request(t.app).get('/metrics').set('Authorization', `Bearer ${token}`).set('X-Forwarded-For', '10.9.9.9');
const value = (text: string, series: string) => {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line ? Number(line.slice(series.length + 1)) : 0;
};

test('when requests are made, then the metrics move', async () => {
  const before = (await scrape()).text;
  const c = await createCustomer(t);
  await request(t.app).get('/api/me').set('X-API-Key', c.apiKey).expect(200);
  await request(t.app).get('/api/me').set('X-API-Key', 'garbage').expect(401);
  await request(t.app).post('/api/usage').set('X-API-Key', c.apiKey).send({ metric: 'api_calls', quantity: 1, idempotency_key: 'm-1' }).expect(201);
  await request(t.app).post('/api/usage').set('X-API-Key', c.apiKey).send({ metric: 'api_calls', quantity: 1, idempotency_key: 'm-1' }).expect(200);
  const after = (await scrape()).text;

  expect(value(after, 'http_request_duration_seconds_count{method="GET",route="/api/me",status="200"}')).toBe(
    value(before, 'http_request_duration_seconds_count{method="GET",route="/api/me",status="200"}') + 1,
  );
  expect(value(after, 'auth_failures_total{kind="customer_key",reason="malformed"}')).toBe(
    value(before, 'auth_failures_total{kind="customer_key",reason="malformed"}') + 1,
  );
  expect(value(after, 'usage_events_accepted_total{mode="single"}')).toBe(value(before, 'usage_events_accepted_total{mode="single"}') + 1);
  expect(after).toMatch(/^db_pool_connections\{state="used"\} \d+/m);
  expect(after).toMatch(/^usage_forwarder_backlog\{state="pending"\} \d+/m);
  expect(after).toMatch(/^process_cpu_seconds_total /m);
  expect(after).not.toMatch(/route="\/api\/customers\/[0-9a-f]{8}-/); // templates, never ids
});

test('when Prometheus scrapes with METRICS_TOKEN, then the admin limit is not spent; without a token it is refused', async () => {
  for (let i = 0; i < 10; i++) expect((await scrape()).status).toBe(200);
  // Counted by the scrapes' address (a correct admin token would be counted by itself instead).
  const list = () => request(t.app).get('/api/customers').set('Authorization', 'Bearer not-a-token').set('X-Forwarded-For', '10.9.9.9');
  for (let i = 0; i < 3; i++) expect((await list()).status).toBe(401);
  expect((await list()).status).toBe(429);
  expectError(await request(t.app).get('/metrics'), 401, 'UNAUTHORIZED');
  expectError(await request(t.app).get('/metrics').set('Authorization', 'Bearer nope'), 401, 'UNAUTHORIZED');
  const after = (await scrape()).text;
  expect(value(after, 'rate_limited_total{limiter="admin"}')).toBe(1);
});
