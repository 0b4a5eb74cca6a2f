/**
 * The guards themselves as the weapon: a Redis that stops answering, a known key start, a shared
 * address, busy refusals, concurrent copies of one key, random customer ids, and a hang-up in a
 * shared check. Each attack is made as an attacker would make it (real sockets, spoofed
 * X-Forwarded-For behind TRUST_PROXY=1, concurrency, hang-ups); each refusal has its control.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { createLogger } from '../../src/logger';
import { connectRedis } from '../../src/redis';
import { createCustomer, issueKey, wrongSecretKey } from '../helpers/factories';
import { call, clientIp, hangUp, me, sameStartKey, serve, Served, sleep, stop, tally } from '../helpers/served-app';
import { startTcpProxy } from '../helpers/tcp-proxy';
import { createTestApp } from '../helpers/test-app';

/** Read with METRICS_TOKEN, which the admin limit does not count. */
const metricsToken = randomBytes(32).toString('hex');
const metric = async (s: Served, name: string) => {
  const text = await (await fetch(`${s.url}/metrics`, { headers: { Authorization: `Bearer ${metricsToken}` } })).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
};

const redisUrl = process.env.REDIS_URL;
(redisUrl ? describe : describe.skip)('a Redis that accepts connections but stops answering (REDIS_URL)', () => {
  test('when it goes silent under two instances, then every limited route still answers at once, limits hold per instance with a warning and redis_fallback_active, and sharing resumes when it answers', async () => {
    const logger = createLogger({ logLevel: 'silent', logPretty: false });
    const target = new URL(redisUrl!);
    const proxy = await startTcpProxy(target.hostname, Number(target.port || 6379));
    const viaProxy = new URL(redisUrl!);
    viaProxy.port = String(proxy.port);
    const [ra, rb] = [connectRedis(viaProxy.toString(), logger), connectRedis(viaProxy.toString(), logger)];
    expect(await ra.ready).toBe(true);
    expect(await rb.ready).toBe(true);
    // 500 ms rather than the default 200: on a loaded test machine a live Redis may take 200 ms.
    const env = { RATE_LIMIT_ADMIN: '3/1m', REDIS_COMMAND_TIMEOUT: '500', REDIS_BREAKER_SECONDS: '1', METRICS_TOKEN: metricsToken };
    const a = await serve(env, { redis: ra });
    const b = await serve(env, { redis: rb });
    // Without a correct token, admin routes are counted by address: 401 until the limit, then 429.
    const probe = (s: Served, ip: string) => call(s, '/api/customers', { Authorization: 'Bearer not-a-token', 'X-Forwarded-For': ip }, {}, 5000);
    try {
      await sleep(200);
      // Control: shared through Redis, one count for both instances.
      const shared = clientIp();
      const before = [];
      for (let i = 0; i < 4; i++) before.push((await probe(i % 2 ? a : b, shared)).status);
      expect(before).toEqual([401, 401, 401, 429]);

      proxy.pause();
      const ip = clientIp();
      const during = [];
      for (const s of [a, b]) for (let i = 0; i < 4; i++) during.push(await probe(s, ip));
      // Each instance counts on its own: 3 each, then refused; none waited on Redis much past its bound.
      expect(during.map((r) => r.status)).toEqual([401, 401, 401, 429, 401, 401, 401, 429]);
      expect(Math.max(...during.map((r) => r.ms))).toBeLessThan(2500);
      // The fault happened: the calls timed out (the connection stayed up), and the breaker is open.
      for (const s of [a, b]) {
        expect(s.t.logs.join('')).toMatch(/"reason":"Timed out after 500ms","msg":"Redis unreachable: rate limits counted per instance until it returns"/);
        expect(await metric(s, 'redis_fallback_active')).toBe(1);
      }
      // Open: Redis is skipped, so a burst costs no waiting at all.
      const burst = await Promise.all(Array.from({ length: 20 }, () => probe(a, clientIp())));
      expect(burst.every((r) => r.status === 401)).toBe(true);
      expect(Math.max(...burst.map((r) => r.ms))).toBeLessThan(1000);

      proxy.resume();
      // After REDIS_BREAKER_SECONDS one call probes Redis; its answer closes the breaker.
      for (let i = 0; i < 40 && (await metric(a, 'redis_fallback_active')) + (await metric(b, 'redis_fallback_active')) > 0; i++) {
        await probe(a, clientIp());
        await probe(b, clientIp());
        await sleep(100);
      }
      for (const s of [a, b]) {
        expect(await metric(s, 'redis_fallback_active')).toBe(0);
        expect(s.t.logs.join('')).toMatch(/rate limits shared through Redis again/);
      }
      const again = clientIp();
      const after = [];
      for (let i = 0; i < 4; i++) after.push((await probe(i % 2 ? a : b, again)).status);
      expect(after).toEqual([401, 401, 401, 429]);
    } finally {
      proxy.resume();
      await stop(a);
      await stop(b);
      await ra.close();
      await rb.close();
      await proxy.close();
    }
  });
});

describe("a live key's start, known to an attacker", () => {
  let s: Served;
  beforeAll(async () => {
    s = await serve({ RATE_LIMIT_AUTH_FAILURES: '20/1m', AUTH_MAX_CONCURRENT_VERIFICATIONS: '4' });
  });
  afterAll(() => stop(s));

  test("when 22 guesses with a live key's start come from 22 addresses, then the real key's first use, from yet another address, succeeds within a second", async () => {
    const c = await createCustomer(s.t);
    const guesses = [];
    for (let i = 0; i < 22; i++) guesses.push((await me(s, sameStartKey(c.apiKey), clientIp())).status);
    // Past the key's own count the guesses go through its lane: checked one at a time, still refused.
    expect(guesses).toEqual(Array<number>(22).fill(401));
    const first = await me(s, c.apiKey, clientIp());
    expect(first.status).toBe(200);
    expect(first.ms).toBeLessThan(1000);
  });

  test("when guesses with a live key's start flood it from many addresses at once, then the real key is verified in its turn", async () => {
    const c = await createCustomer(s.t);
    for (let i = 0; i < 21; i++) await me(s, sameStartKey(c.apiKey), clientIp()); // past the key's count
    const flood = Promise.all(Array.from({ length: 60 }, () => me(s, sameStartKey(c.apiKey), clientIp())));
    await sleep(10);
    const real = await me(s, c.apiKey, clientIp());
    const results = await flood;
    expect(real.status).toBe(200);
    expect(real.ms).toBeLessThan(1000);
    // Every guess was refused: checked (401) or, waiting past its turn, shed (503).
    expect(results.every((r) => r.status === 401 || r.status === 503)).toBe(true);
  });

  test("when one address keeps guessing at a live key's start, then it alone is refused past the limit, before bcrypt", async () => {
    const c = await createCustomer(s.t);
    const ip = clientIp();
    const before = s.t.bcryptCalls();
    const statuses = [];
    for (let i = 0; i < 22; i++) statuses.push((await me(s, sameStartKey(c.apiKey), ip)).status);
    expect(tally(statuses)).toEqual({ 401: 20, 429: 2 });
    expect(s.t.bcryptCalls() - before).toBe(20);
    expect((await me(s, c.apiKey, clientIp())).status).toBe(200);
  });
});

describe('valid callers behind an address that sends junk', () => {
  test('when five bad admin tokens come from an address, then the valid admin token from it still succeeds, and is counted by token', async () => {
    const s = await serve({ RATE_LIMIT_ADMIN: '5/1h', RATE_LIMIT_AUTH_FAILURES: '5/1h' });
    try {
      const ip = clientIp();
      const admin = (token: string, from = ip) => call(s, '/api/customers?limit=1', { Authorization: `Bearer ${token}`, 'X-Forwarded-For': from });
      const bad = [];
      for (let i = 0; i < 5; i++) bad.push((await admin(newToken())).status);
      expect(bad).toEqual([401, 401, 401, 401, 401]);
      // Control: the address is now refused for anything else it tries.
      expect((await admin(newToken())).status).toBe(429);
      expect((await admin(s.t.adminToken)).status).toBe(200);
      // Counted by the token, whatever the address: the seed's numbers (here 5 an hour).
      const good = [];
      for (let i = 0; i < 4; i++) good.push((await admin(s.t.adminToken, clientIp())).status);
      expect(good).toEqual([200, 200, 200, 200]);
      const over = await admin(s.t.adminToken, clientIp());
      expect([over.status, over.headers.get('ratelimit-policy')]).toEqual([429, expect.stringContaining('"admin"')]);
    } finally {
      await stop(s);
    }
  });

  test('when 100 junk requests come from an address, then a key already verified is served from it, counted by its customer', async () => {
    const s = await serve({ RATE_LIMIT_API: '10/1h', RATE_LIMIT_AUTH_FAILURES: '5/1h', AUTH_MAX_CONCURRENT_VERIFICATIONS: '64' });
    try {
      const c = await createCustomer(s.t);
      expect((await me(s, c.apiKey, clientIp())).status).toBe(200); // verified (remembered) from elsewhere
      const nat = clientIp();
      const junk = await Promise.all(Array.from({ length: 100 }, (_, i) => me(s, i % 2 ? 'junk' : wrongSecretKey(c.id), nat)));
      expect(tally(junk.map((r) => r.status))).toEqual({ 401: 5, 429: 95 });
      // Control: a key never verified from that address meets the address's limits.
      const other = await createCustomer(s.t);
      expect((await me(s, other.apiKey, nat)).status).toBe(429);
      // Its first use above was counted by that address; from now on, by the customer.
      const served = [];
      for (let i = 0; i < 10; i++) served.push((await me(s, c.apiKey, nat)).status);
      expect(served).toEqual(Array<number>(10).fill(200));
      // The customer's own budget (10 an hour here), from any address.
      expect((await me(s, c.apiKey, clientIp())).status).toBe(429);
    } finally {
      await stop(s);
    }
  });
});

const newToken = () => randomBytes(32).toString('hex');

describe('busy is not free', () => {
  test('when a flood of guesses is refused as busy, then each stays counted, the next guess is refused, each busy answer is one warn line, and an address far over its limit reaches no database', async () => {
    const s = await serve({ AUTH_MAX_CONCURRENT_VERIFICATIONS: '2', BCRYPT_COST: '10', RATE_LIMIT_AUTH_FAILURES: '30/1m', METRICS_TOKEN: metricsToken });
    try {
      const c = await createCustomer(s.t);
      const ip = clientIp();
      const logsBefore = s.t.logs.length;
      const results = await Promise.all(Array.from({ length: 30 }, () => me(s, wrongSecretKey(c.id), ip)));
      const busy = results.filter((r) => r.status === 503);
      expect(busy.length).toBeGreaterThan(0);
      expect(tally(results.map((r) => r.status))).toEqual({ 401: 30 - busy.length, 503: busy.length });
      // Every one was counted: the address's next guess is refused, without bcrypt.
      const bcrypt = s.t.bcryptCalls();
      const next = await me(s, wrongSecretKey(c.id), ip);
      expect([next.status, next.code]).toEqual([429, 'RATE_LIMITED']);
      expect(s.t.bcryptCalls()).toBe(bcrypt);
      // Control: another address (guessing at another customer) still has its budget.
      const c2 = await createCustomer(s.t);
      expect((await me(s, wrongSecretKey(c2.id), clientIp())).status).toBe(401);
      // Logged at warn, once each, without a stack; counted on their own.
      const lines = s.t.logs.slice(logsBefore).map((l) => JSON.parse(l) as { level: number; msg: string; errorCode?: string; err?: unknown });
      const busyLines = lines.filter((l) => l.errorCode === 'SERVICE_UNAVAILABLE');
      expect(busyLines.length).toBe(busy.length);
      expect(busyLines.every((l) => l.level === 40 && l.err === undefined)).toBe(true);
      expect(lines.filter((l) => l.level >= 50)).toEqual([]);
      expect(await metric(s, 'key_verifications_busy_total')).toBe(busy.length);

      // Far over its limit (past five times it): refused before any database lookup.
      for (let i = 0; i < 120; i++) expect((await me(s, wrongSecretKey(c.id), ip)).status).toBe(429);
      const queries: string[] = [];
      const onQuery = (q: { sql: string }) => void queries.push(q.sql);
      s.t.db.on('query', onQuery);
      try {
        for (let i = 0; i < 10; i++) expect((await me(s, wrongSecretKey(c.id), ip)).status).toBe(429);
        const refusedAtOnce = queries.length;
        await me(s, wrongSecretKey(c2.id), clientIp()); // control: a fresh address is looked up
        expect([refusedAtOnce, queries.length > refusedAtOnce]).toEqual([0, true]);
      } finally {
        s.t.db.removeListener('query', onQuery);
      }
    } finally {
      await stop(s);
    }
  });
});

describe('busy attempts that name a live key', () => {
  test("when attempts with a live key's start are refused as busy, then they are given back: only checked ones count", async () => {
    const s = await serve({ AUTH_MAX_CONCURRENT_VERIFICATIONS: '1', BCRYPT_COST: '10', RATE_LIMIT_AUTH_FAILURES: '5/1m' });
    try {
      const c = await createCustomer(s.t);
      const ip = clientIp();
      const results = await Promise.all(Array.from({ length: 5 }, () => me(s, sameStartKey(c.apiKey), ip)));
      const checked = results.filter((r) => r.status === 401).length;
      const busy = results.filter((r) => r.status === 503).length;
      expect([checked > 0, busy > 0, checked + busy]).toEqual([true, true, 5]);
      const after = [];
      for (let i = 0; i < 5 - checked; i++) after.push((await me(s, sameStartKey(c.apiKey), ip)).status);
      expect(after.every((st) => st === 401)).toBe(true);
      expect((await me(s, sameStartKey(c.apiKey), ip)).status).toBe(429);
    } finally {
      await stop(s);
    }
  });
});

describe('bounded', () => {
  test('when 300 copies of one wrong key arrive at once from one address, then at most RATE_LIMIT_AUTH_FAILURES audit rows are written', async () => {
    const s = await serve({ RATE_LIMIT_AUTH_FAILURES: '20/1m', AUTH_MAX_CONCURRENT_VERIFICATIONS: '64' });
    try {
      const c = await createCustomer(s.t);
      const ip = clientIp();
      const key = wrongSecretKey(c.id);
      const results = await Promise.all(Array.from({ length: 300 }, () => me(s, key, ip)));
      const counts = tally(results.map((r) => r.status));
      expect(counts[401]).toBeGreaterThan(0);
      expect(counts[429]).toBeGreaterThan(0);
      expect((counts[401] ?? 0) + (counts[429] ?? 0)).toBe(300);
      await sleep(300); // audit rows are written detached
      const rows = await s.t.db('audit_log').where({ action: 'auth.customer_key', outcome: 'failure', ip }).count<{ n: string }[]>({ n: '*' });
      expect(Number(rows[0]!.n)).toBeGreaterThan(0);
      expect(Number(rows[0]!.n)).toBeLessThanOrEqual(20);
      expect(Number(rows[0]!.n)).toBe(counts[401]);
    } finally {
      await stop(s);
    }
  });

  test('when 200,000 keys with random customer ids arrive, then the heap stays flat: no counter is kept for a customer that does not exist', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const t = await createTestApp({ RATE_LIMIT_AUTH_FAILURES: '5/15m' });
    try {
      const addresses = Array.from({ length: 200 }, () => clientIp());
      let n = 0;
      const outcomes: Record<string, number> = {};
      const flood = async (count: number) => {
        for (let done = 0; done < count; done += 500) {
          await Promise.all(
            Array.from({ length: 500 }, () =>
              t.c.verifier
                .verify(`cust_${randomUUID()}_${randomBytes(32).toString('base64url')}`, {
                  actor: 'system',
                  actorId: null,
                  ip: addresses[n++ % addresses.length]!,
                  requestId: randomUUID(),
                  clientRequestId: null,
                })
                .then(
                  () => (outcomes.ok = (outcomes.ok ?? 0) + 1),
                  (err: { code?: string; message: string }) => {
                    const what = err.code ?? err.message;
                    outcomes[what] = (outcomes[what] ?? 0) + 1;
                  },
                ),
            ),
          );
        }
      };
      // Warm-up: every address past its limit, the verdict cache full, code paths compiled.
      await flood(20_000);
      gc();
      const before = process.memoryUsage().heapUsed;
      await flood(200_000);
      gc();
      const grown = process.memoryUsage().heapUsed - before;
      // Floor: the flood was real and refused (checked, or shed as busy, while under the limits; then refused).
      const { UNAUTHORIZED = 0, RATE_LIMITED = 0, SERVICE_UNAVAILABLE = 0, ...other } = outcomes;
      expect(other).toEqual({});
      expect(UNAUTHORIZED).toBeGreaterThan(0);
      expect(RATE_LIMITED).toBeGreaterThan(200_000);
      expect(UNAUTHORIZED + RATE_LIMITED + SERVICE_UNAVAILABLE).toBe(220_000);
      // A counter per id costs ~700 bytes: 200,000 of them would be ~140 MB.
      console.log(`heap grew ${(grown / 1048576).toFixed(1)} MB over 200,000 random customer ids`);
      expect(grown).toBeLessThan(20 * 1024 * 1024);
    } finally {
      await t.close();
    }
  }, 120_000);
});

describe('a check shared by several callers', () => {
  test('when one caller hangs up, then another caller sharing its in-flight check of the same valid key gets its 200', async () => {
    const s = await serve({});
    try {
      const c = await createCustomer(s.t);
      const fresh = await issueKey(s.t, c.id, { keep_existing: true });
      // Hold the key lookup so both callers are waiting on the one check before it reaches bcrypt.
      const lock = await s.t.db.transaction();
      await lock.raw('LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE');
      let second: ReturnType<typeof me> | undefined;
      try {
        await hangUp(s, { 'X-API-Key': fresh.apiKey, 'X-Forwarded-For': clientIp() });
        await sleep(50);
        second = me(s, fresh.apiKey, clientIp());
        await sleep(300); // the server sees the first caller's hang-up meanwhile
      } finally {
        await lock.commit();
      }
      const answer = await second;
      expect([answer.status, answer.code]).toEqual([200, undefined]);
      // Control: when every caller of a check has gone, no bcrypt is spent on it.
      const other = await issueKey(s.t, c.id, { keep_existing: true });
      const lock2 = await s.t.db.transaction();
      await lock2.raw('LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE');
      const bcrypt = s.t.bcryptCalls();
      try {
        await hangUp(s, { 'X-API-Key': other.apiKey, 'X-Forwarded-For': clientIp() });
        await sleep(300);
      } finally {
        await lock2.commit();
      }
      await sleep(200);
      expect(s.t.bcryptCalls()).toBe(bcrypt);
    } finally {
      await stop(s);
    }
  });
});
