/**
 * The failed-authentication limit as an attacker meets it: concurrent floods, clients that hang
 * up before the answer, guesses spread over addresses, and the bcrypt slots. Requests go over real
 * sockets to a listening server, so concurrency and hang-ups are what a client would produce.
 */
import { createLogger } from '../../src/logger';
import { connectRedis } from '../../src/redis';
import { createCustomer, issueKey, wrongSecretKey } from '../helpers/factories';
import { call, clientIp, hangUp, me, sameStartKey, serve, Served, sleep, stop, tally } from '../helpers/served-app';
import { newAdminToken } from '../helpers/test-app';

describe('the failed-authentication limit counts before it checks', () => {
  let s: Served;
  beforeAll(async () => {
    s = await serve({ RATE_LIMIT_AUTH_FAILURES: '20/1m', AUTH_MAX_CONCURRENT_VERIFICATIONS: '64' });
  });
  afterAll(() => stop(s));

  test('when 200 wrong secrets for a real customer arrive at once from one address, then 20 are checked and 180 get 429 without bcrypt', async () => {
    const c = await createCustomer(s.t);
    const ip = clientIp();
    const before = s.t.bcryptCalls();
    const results = await Promise.all(Array.from({ length: 200 }, () => me(s, wrongSecretKey(c.id), ip)));
    expect(tally(results.map((r) => r.status))).toEqual({ 401: 20, 429: 180 });
    expect(s.t.bcryptCalls() - before).toBe(20);
    const limited = results.find((r) => r.status === 429)!;
    expect(limited.code).toBe('RATE_LIMITED');
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(limited.headers.get('ratelimit-policy')).toContain('"authFailures"; q=20');
  });

  test('when clients hang up before the answer, then each attempt still counts, no bcrypt runs for it, and the access log says 499', async () => {
    const c = await createCustomer(s.t);
    const ip = clientIp();
    const before = s.t.bcryptCalls();
    const logsBefore = s.t.logs.length;
    for (let i = 0; i < 25; i++) await hangUp(s, { 'X-API-Key': wrongSecretKey(c.id), 'X-Forwarded-For': ip });
    // Let the server notice each hang-up and write its log line.
    for (let i = 0; i < 50 && s.t.logs.slice(logsBefore).filter((l) => l.includes('"status":499')).length < 25; i++) await sleep(20);
    const refused = await me(s, wrongSecretKey(c.id), ip);
    expect(refused.status).toBe(429);
    // At most the limit's worth of checks can have started before a hang-up was seen; none after.
    expect(s.t.bcryptCalls() - before).toBeLessThanOrEqual(20);
    const lines = s.t.logs.slice(logsBefore).filter((l) => l.includes('"url":"/api/me"'));
    const aborted = lines.filter((l) => l.includes('"status":499') && l.includes('"aborted":true') && l.includes('request aborted'));
    // A hang-up noticed only after the answer was written is a 401 the client never read; none is a 200.
    expect(aborted.length).toBeGreaterThanOrEqual(20);
    expect(lines.filter((l) => /"status":(200|201)/.test(l))).toEqual([]);
  });

  test('when a guess fails, then its reservation stays; when a key succeeds, then its reservation is given back', async () => {
    const c = await createCustomer(s.t);
    const ip = clientIp();
    // Good first uses (a new key each time) from one address never spend its budget.
    for (let i = 0; i < 5; i++) {
      const k = await issueKey(s.t, c.id, { keep_existing: true });
      expect((await me(s, k.apiKey, ip)).status).toBe(200);
      await s.t.db('api_keys').where({ id: k.keyId }).update({ revoked_at: new Date() });
    }
    const results = [];
    for (let i = 0; i < 21; i++) results.push((await me(s, wrongSecretKey(c.id), ip)).status);
    expect(tally(results)).toEqual({ 401: 20, 429: 1 });
  });
});

describe('the limit does not lock out what it can tell is real', () => {
  let s: Served;
  const metricsToken = newAdminToken();
  beforeAll(async () => {
    s = await serve({ RATE_LIMIT_AUTH_FAILURES: '3/1m', METRICS_TOKEN: metricsToken });
  });
  afterAll(() => stop(s));

  test('when an address is locked out, then a remembered key, a new real key and correct admin and metrics tokens from it still work', async () => {
    const c = await createCustomer(s.t);
    const fresh = await issueKey(s.t, c.id, { keep_existing: true });
    const ip = clientIp();
    expect((await me(s, c.apiKey, ip)).status).toBe(200); // now remembered
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await me(s, wrongSecretKey(c.id), ip)).status);
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
    expect((await call(s, '/api/customers', { Authorization: 'Bearer wrong-token', 'X-Forwarded-For': ip })).status).toBe(429);

    expect((await me(s, c.apiKey, ip)).status).toBe(200);
    const first = await me(s, fresh.apiKey, ip);
    expect(first.status).toBe(200);
    expect((await call(s, '/api/customers?limit=1', { Authorization: `Bearer ${s.t.adminToken}`, 'X-Forwarded-For': ip })).status).toBe(200);
    const metrics = await fetch(`${s.url}/metrics`, { headers: { Authorization: `Bearer ${metricsToken}`, 'X-Forwarded-For': ip } });
    expect(metrics.status).toBe(200);
  });

  test('when wrong secrets for one customer come from many addresses, then its guesses are refused without bcrypt, and its real keys still work', async () => {
    const c = await createCustomer(s.t);
    const before = s.t.bcryptCalls();
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await me(s, wrongSecretKey(c.id), clientIp())).status);
    expect(statuses).toEqual([401, 401, 401, 429, 429, 429]);
    expect(s.t.bcryptCalls() - before).toBe(3);
    // Its key was never used (not remembered): it names a live key, so it is still checked.
    expect((await me(s, c.apiKey, clientIp())).status).toBe(200);
  });

  test("when wrong secrets reuse a live key's start from one address, then they are counted against that key from that address and refused past the limit", async () => {
    const c = await createCustomer(s.t);
    const ip = clientIp();
    const before = s.t.bcryptCalls();
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await me(s, sameStartKey(c.apiKey), ip)).status);
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
    expect(s.t.bcryptCalls() - before).toBe(3);
    // The key itself, from another address, is not locked out by them.
    expect((await me(s, c.apiKey, clientIp())).status).toBe(200);
  });

  test('when an address floods POST /api/usage with bad keys, then its own per-address limit refuses it before authentication', async () => {
    const u = await serve({ RATE_LIMIT_USAGE_ADDRESS: '3/1m' });
    try {
      const ip = clientIp();
      const post = () =>
        call(u, '/api/usage', { 'X-API-Key': 'nope', 'X-Forwarded-For': ip, 'Content-Type': 'application/json' }, { method: 'POST', body: '{}' });
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await post()).status);
      expect(statuses).toEqual([401, 401, 401, 429]);
      expect(u.t.limited).toEqual(['usageAddress']);
    } finally {
      await stop(u);
    }
  });
});

describe('bcrypt slots', () => {
  let s: Served;
  beforeAll(async () => {
    // Real bcrypt cost, two slots (one for guesses), and no failure limit in the way.
    s = await serve({ AUTH_MAX_CONCURRENT_VERIFICATIONS: '2', BCRYPT_COST: '10', RATE_LIMIT_AUTH_FAILURES: '100000/1m' });
  });
  afterAll(() => stop(s));

  test('when a flood of guesses fills the slots, then more guesses get a fast 503 with Retry-After, while a remembered key and a new key are served', async () => {
    const c = await createCustomer(s.t);
    const fresh = await issueKey(s.t, c.id, { keep_existing: true });
    // What a first use costs on this machine right now, with nothing else going on.
    const quiet = await me(s, (await issueKey(s.t, c.id, { keep_existing: true })).apiKey, clientIp());
    expect(quiet.status).toBe(200);
    expect((await me(s, c.apiKey, clientIp())).status).toBe(200); // remembered
    const flood = Promise.all(Array.from({ length: 60 }, () => me(s, wrongSecretKey(c.id), clientIp())));
    await sleep(20);
    const [remembered, first] = await Promise.all([me(s, c.apiKey, clientIp()), me(s, fresh.apiKey, clientIp())]);
    const results = await flood;
    expect(remembered.status).toBe(200);
    expect(first.status).toBe(200);
    // Not starved: as quick as a first use ever is here (under 2 s on an idle machine, 3 s allowed for a
    // loaded one), whatever the flood. Starved, it would queue behind the 60 guesses' bcrypt (about 8 s).
    expect(first.ms).toBeLessThan(Math.max(3000, quiet.ms * 4));
    const busy = results.filter((r) => r.status === 503);
    expect(busy.length).toBeGreaterThan(0);
    expect(busy.every((r) => r.code === 'SERVICE_UNAVAILABLE' && r.headers.get('retry-after') === '1')).toBe(true);
    expect(results.every((r) => r.status === 401 || r.status === 503)).toBe(true);
    const text = await (await fetch(`${s.url}/metrics`, { headers: { Authorization: `Bearer ${s.t.adminToken}` } })).text();
    expect(text).toMatch(new RegExp(`^key_verifications_busy_total ${busy.length}$`, 'm'));
  });
});

const redisUrl = process.env.REDIS_URL;
(redisUrl ? describe : describe.skip)('with Redis (REDIS_URL)', () => {
  test('when 100 wrong secrets arrive at once at two instances sharing Redis, then exactly the limit is checked', async () => {
    const logger = createLogger({ logLevel: 'silent', logPretty: false });
    const [ra, rb] = [connectRedis(redisUrl!, logger), connectRedis(redisUrl!, logger)];
    await Promise.all([ra.ready, rb.ready]);
    // A roomy Redis bound: on a loaded test machine Redis may be slow, and this test is about sharing.
    const env = { RATE_LIMIT_AUTH_FAILURES: '10/1m', AUTH_MAX_CONCURRENT_VERIFICATIONS: '64', REDIS_COMMAND_TIMEOUT: '2000' };
    const [a, b] = [await serve(env, { redis: ra }), await serve(env, { redis: rb })];
    try {
      const c = await createCustomer(a.t);
      const ip = clientIp();
      const results = await Promise.all(Array.from({ length: 100 }, (_, i) => me(i % 2 ? a : b, wrongSecretKey(c.id), ip)));
      expect(tally(results.map((r) => r.status))).toEqual({ 401: 10, 429: 90 });
      expect(a.t.bcryptCalls() + b.t.bcryptCalls()).toBe(10);
    } finally {
      await stop(a);
      await stop(b);
      await ra.close();
      await rb.close();
    }
  });
});
