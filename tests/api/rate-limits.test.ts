import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { connectRedis } from '../../src/redis';
import { createLogger } from '../../src/logger';
import { expectError } from '../helpers/envelope';
import { createCustomer, wrongSecretKey } from '../helpers/factories';
import { startTcpProxy } from '../helpers/tcp-proxy';
import { createTestApp, TestApp } from '../helpers/test-app';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A client address of its own per test (TRUST_PROXY on), so counters never collide. */
const clientIp = () => `10.${randomBytes(1)[0]}.${randomBytes(1)[0]}.${randomBytes(1)[0]}`;

function expectLimited(res: request.Response, policy: string) {
  expectError(res, 429, 'RATE_LIMITED');
  expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
  expect(res.headers['ratelimit-policy']).toContain(`"${policy}"`);
  expect(res.headers.ratelimit).toMatch(/r=0/);
}

describe('each limiter', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({
      TRUST_PROXY: '1',
      RATE_LIMIT_API: '3/1s',
      RATE_LIMIT_USAGE: '2/1s',
      RATE_LIMIT_WEBHOOKS: '3/1s',
      RATE_LIMIT_ADMIN: '1000/1s', // the factories here are admin calls from one address; see below
      RATE_LIMIT_AUTH_FAILURES: '3/1s',
      STRIPE_WEBHOOK_SECRET: 'whsec_limits',
    });
  });
  afterAll(() => t.close());

  test('when an address passes the API limit, then 429 in the envelope with draft-8 headers, and the window resets; a remembered key is counted by its customer instead', async () => {
    const c = await createCustomer(t);
    const ip = clientIp();
    const junk = () => request(t.app).get('/api/me').set('X-Forwarded-For', ip);
    for (let i = 0; i < 3; i++) {
      const refused = await junk();
      expect(refused.status).toBe(401);
      expect(refused.headers.ratelimit).toMatch(new RegExp(`"api"; r=${2 - i}`));
    }
    expectLimited(await junk(), 'api');
    expect(t.limited).toContain('api');
    // Another address has its own budget (the key's first use, counted by address); now it is remembered.
    const me = (from: string) => request(t.app).get('/api/me').set('X-API-Key', c.apiKey).set('X-Forwarded-For', from);
    expect((await me(clientIp())).status).toBe(200);
    // Remembered: counted by its customer, so the junk from `ip` does not lock it out there...
    expect((await me(ip)).status).toBe(200);
    expect((await me(clientIp())).status).toBe(200);
    expect((await me(clientIp())).status).toBe(200);
    // ...and the customer's budget is one, from whatever address.
    expectLimited(await me(clientIp()), 'api');
    await sleep(1100);
    expect((await junk()).status).toBe(401);
    expect((await me(ip)).status).toBe(200);
  });

  test('when a customer passes the usage limit, then only that customer is refused, from any address', async () => {
    const [a, b] = [await createCustomer(t), await createCustomer(t)];
    const post = (c: typeof a) =>
      request(t.app)
        .post('/api/usage')
        .set('X-API-Key', c.apiKey)
        .set('X-Forwarded-For', clientIp())
        .send({ metric: 'api_calls', quantity: 1, idempotency_key: randomBytes(6).toString('hex') });
    await post(a).expect(201);
    await post(a).expect(201);
    expectLimited(await post(a), 'usage');
    await post(b).expect(201);
    await sleep(1100);
    await post(a).expect(201);
  });

  test('when an address passes the admin limit, then 429', async () => {
    const admin = await createTestApp({ TRUST_PROXY: '1', RATE_LIMIT_ADMIN: '3/1s' });
    try {
      const ip = clientIp();
      const list = () => request(admin.app).get('/api/customers').set('Authorization', `Bearer ${admin.adminToken}`).set('X-Forwarded-For', ip);
      for (let i = 0; i < 3; i++) expect((await list()).status).toBe(200);
      expectLimited(await list(), 'admin');
      await sleep(1100);
      expect((await list()).status).toBe(200);
    } finally {
      await admin.close();
    }
  });

  test('when an address passes the webhook limit, then 429 before any signature check', async () => {
    const ip = clientIp();
    const hook = () => request(t.app).post('/api/webhooks/stripe').set('Content-Type', 'application/json').set('X-Forwarded-For', ip).send('{}');
    for (let i = 0; i < 3; i++) expect((await hook()).status).toBe(400);
    expectLimited(await hook(), 'webhooks');
    await sleep(1100);
    expect((await hook()).status).toBe(400);
  });

  test('when an address floods wrong keys, then after the limit it is refused without running bcrypt', async () => {
    const f = await createTestApp({ TRUST_PROXY: '1', RATE_LIMIT_AUTH_FAILURES: '3/2s' });
    try {
      const c = await createCustomer(f);
      const ip = clientIp();
      const bad = () => request(f.app).get('/api/me').set('X-Forwarded-For', ip).set('X-API-Key', wrongSecretKey(c.id));
      const badAdmin = () => request(f.app).get('/api/customers').set('X-Forwarded-For', ip).set('Authorization', 'Bearer wrong-token');
      expect((await bad()).status).toBe(401);
      expect((await badAdmin()).status).toBe(401);
      expect((await bad()).status).toBe(401);
      const bcryptBefore = f.bcryptCalls();
      for (let i = 0; i < 20; i++) expectLimited(await bad(), 'authFailures');
      expectLimited(await badAdmin(), 'authFailures');
      expect(f.bcryptCalls()).toBe(bcryptBefore);
      // Successes do not spend the budget: an address with a good key is never limited by it.
      const other = clientIp();
      for (let i = 0; i < 10; i++) expect((await request(f.app).get('/api/me').set('X-Forwarded-For', other).set('X-API-Key', c.apiKey)).status).toBe(200);
      // The window passes: the address may try again.
      await sleep(2100);
      expect((await bad()).status).toBe(401);
    } finally {
      await f.close();
    }
  });
});

const redisUrl = process.env.REDIS_URL;
const withRedis = redisUrl ? describe : describe.skip;

withRedis('with Redis (REDIS_URL)', () => {
  const logger = createLogger({ logLevel: 'silent', logPretty: false });

  test('when two instances share Redis, then they share one counter', async () => {
    const [ra, rb] = [connectRedis(redisUrl!, logger), connectRedis(redisUrl!, logger)];
    expect(await ra.ready).toBe(true);
    expect(await rb.ready).toBe(true);
    // A roomy bound: on a loaded test machine Redis may be slow, and this test is about sharing.
    const env = { TRUST_PROXY: '1', RATE_LIMIT_ADMIN: '3/1m', REDIS_COMMAND_TIMEOUT: '2000' };
    const a = await createTestApp(env, { redis: ra });
    const b = await createTestApp({ ...env, ADMIN_API_TOKEN: a.adminToken }, { redis: rb });
    try {
      await sleep(200);
      const ip = clientIp();
      const list = (t: TestApp) => request(t.app).get('/api/customers').set('Authorization', `Bearer ${a.adminToken}`).set('X-Forwarded-For', ip);
      expect((await list(a)).status).toBe(200);
      expect((await list(b)).status).toBe(200);
      expect((await list(a)).status).toBe(200);
      expectLimited(await list(b), 'admin');
      expectLimited(await list(a), 'admin');
    } finally {
      await Promise.all([a.close(), b.close(), ra.close(), rb.close()]);
    }
  });

  test('when Redis goes away, then requests are still served and still limited (per instance), and sharing resumes when it is back', async () => {
    const target = new URL(redisUrl!);
    const proxy = await startTcpProxy(target.hostname, Number(target.port || 6379));
    const viaProxy = new URL(redisUrl!);
    viaProxy.port = String(proxy.port);
    const redis = connectRedis(viaProxy.toString(), logger);
    expect(await redis.ready).toBe(true);
    const t = await createTestApp({ TRUST_PROXY: '1', RATE_LIMIT_ADMIN: '3/1m', REDIS_BREAKER_SECONDS: '1' }, { redis });
    try {
      await sleep(200);
      // Requests without a correct token are counted by address (a correct one by its token).
      const list = (ip: string) => request(t.app).get('/api/customers').set('Authorization', 'Bearer not-a-token').set('X-Forwarded-For', ip);
      expect((await list(clientIp())).status).toBe(401);
      await proxy.cut();
      const ip = clientIp();
      for (let i = 0; i < 3; i++) expect((await list(ip)).status).toBe(401);
      expectLimited(await list(ip), 'admin');
      expect(t.logs.join('')).toMatch(/Redis unreachable: rate limits counted per instance/);
      await proxy.restore();
      await sleep(2500);
      for (let i = 0; i < 3; i++) expect((await list(clientIp())).status).toBe(401);
      expect(t.logs.join('')).toMatch(/rate limits shared through Redis again/);
    } finally {
      await t.close();
      await redis.close();
      await proxy.close();
    }
  });
});
