import request from 'supertest';
import { expectError } from '../helpers/envelope';
import { createCustomer } from '../helpers/factories';
import { startTcpProxy, TcpProxy } from '../helpers/tcp-proxy';
import { createTestApp, TestApp, testDatabaseUrl } from '../helpers/test-app';

let proxy: TcpProxy;
let t: TestApp;
beforeAll(async () => {
  const real = new URL(testDatabaseUrl());
  proxy = await startTcpProxy(real.hostname, Number(real.port || 5432));
  const viaProxy = new URL(testDatabaseUrl());
  viaProxy.port = String(proxy.port);
  t = await createTestApp({}, { databaseUrl: viaProxy.toString() });
});
afterAll(async () => {
  await t.close();
  await proxy.close();
});

test('when the database goes away, then usage gets a 503 in the envelope; once it is back, usage is stored', async () => {
  const c = await createCustomer(t);
  const send = (k: string) => request(t.app).post('/api/usage').set('X-API-Key', c.apiKey).send({ metric: 'api_calls', quantity: 1, idempotency_key: k });
  await send('before').expect(201);

  await proxy.cut();
  const down = await send('during');
  expectError(down, 503, 'SERVICE_UNAVAILABLE');
  expect(down.headers['retry-after']).toBeDefined();
  expect(JSON.stringify(down.body)).not.toMatch(/ECONN|terminated|stack/i);
  expectError(await request(t.app).get('/ready'), 503, 'SERVICE_UNAVAILABLE');

  await proxy.restore();
  const after = await send('after');
  expect(after.status).toBe(201);
  // The request refused during the outage was not stored, and can simply be sent again.
  expect((await send('during')).status).toBe(201);
  const keys = (await t.db('usage_events').where({ customer_id: c.id }).pluck('idempotency_key')).sort();
  expect(keys).toEqual(['after', 'before', 'during']);
  // /ready answers from a check at most a second old: the one that saw the outage may still stand.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  await request(t.app).get('/ready').expect(200);
});
