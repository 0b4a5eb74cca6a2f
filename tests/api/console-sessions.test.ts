/**
 * Admin console sessions (src/modules/console): an admin token exchanged once for an HttpOnly
 * SameSite=Strict cookie, kept server-side, ended by idle and absolute timeouts, sign-out, the token
 * leaving ADMIN_API_TOKEN, and a new sign-in; and usable only from the console's own origin.
 */
import { createHash } from 'node:crypto';
import type { Request } from 'express';
import request from 'supertest';
import { createConsoleSessions } from '../../src/modules/console/console-sessions';
import { systemContext } from '../../src/lib/request-context';
import { consoleHeaders, SAME_ORIGIN, sessionCookieOf } from '../helpers/console-session';
import { expectError } from '../helpers/envelope';
import { createTestApp, newAdminToken, type TestApp } from '../helpers/test-app';

let t: TestApp;
let skewMs = 0;
beforeAll(async () => {
  t = await createTestApp({ CONSOLE_SESSION_IDLE: '30m', CONSOLE_SESSION_MAX: '2h' }, { now: () => Date.now() + skewMs });
});
afterEach(() => {
  skewMs = 0;
});
afterAll(() => t.close());

const MIN = 60_000;
const signIn = (app: TestApp, token: string, headers: Record<string, string> = SAME_ORIGIN) =>
  request(app.app).post('/api/console/session').set(headers).send({ token });
const me = (app: TestApp, headers: Record<string, string>) => request(app.app).get('/api/console/session').set(headers);
/** This app's sessions only: other test files sign in on the same database at the same time. */
const ours = (app: TestApp) =>
  app
    .db('console_sessions')
    .where({ token_fingerprint: app.c.adminTokens.match(app.adminToken)! })
    .count({ n: '*' });
const idHashOf = (cookie: string) => createHash('sha256').update(cookie.split('=')[1]!).digest();

describe('signing in', () => {
  test('when the admin token is sent from the console, then 201, an HttpOnly SameSite=Strict cookie, and a row that holds only the id’s hash', async () => {
    const res = await signIn(t, t.adminToken);
    expect(res.status).toBe(201);
    const raw = (res.headers['set-cookie'] as unknown as string[])[0]!;
    expect(raw).toMatch(/^billing_console=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=7200$/);
    expect(res.headers['cache-control']).toBe('no-store');
    const actor = t.c.adminTokens.match(t.adminToken);
    expect(res.body).toEqual({
      actor_id: actor,
      created_at: expect.any(String),
      expires_at: expect.any(String),
      idle_expires_at: expect.any(String),
      idle_timeout_seconds: 1800,
    });
    expect(Date.parse(res.body.expires_at) - Date.parse(res.body.created_at)).toBe(2 * 60 * MIN);
    const cookie = sessionCookieOf(res);
    const row = await t
      .db('console_sessions')
      .where({ id_hash: idHashOf(cookie) })
      .first();
    expect(row).toMatchObject({ token_fingerprint: actor, revoked_at: null });
    // Neither the id nor the token is stored anywhere in the row.
    const stored = JSON.stringify(row);
    expect(stored).not.toContain(cookie.split('=')[1]);
    expect(stored).not.toContain(t.adminToken);
    const audit = await t.db('audit_log').where({ action: 'console.sign_in', outcome: 'success', actor_id: actor }).orderBy('id', 'desc').first();
    expect(audit?.details).toEqual({ session: idHashOf(cookie).toString('hex').slice(0, 12), expires_at: res.body.expires_at });
    expect(JSON.stringify(await t.db('audit_log').where('action', 'like', 'console.%'))).not.toContain(t.adminToken);
    expect(t.logs.join('')).not.toContain(t.adminToken);
    // The session answers for itself.
    expect((await me(t, { Cookie: cookie, ...SAME_ORIGIN })).body.actor_id).toBe(actor);
  });

  test('when the token is wrong, then 401, an audited failure, and the failures count against the limit; the right token still signs in', async () => {
    const f = await createTestApp({ RATE_LIMIT_AUTH_FAILURES: '3/1m' });
    try {
      const refused: string[] = [];
      for (let i = 0; i < 3; i++) {
        const res = await signIn(f, newAdminToken());
        expectError(res, 401, 'UNAUTHORIZED');
        refused.push(res.body.error.requestId as string);
      }
      expectError(await signIn(f, newAdminToken()), 429, 'RATE_LIMITED');
      // The same limit as bearer tokens: the next wrong bearer token is refused too.
      expectError(await request(f.app).get('/api/customers').set('Authorization', `Bearer ${newAdminToken()}`), 429, 'RATE_LIMITED');
      // Each refusal audited, by its request (other files sign in on the same database at the same time).
      expect(await f.db('audit_log').where({ action: 'console.sign_in', outcome: 'failure' }).whereIn('request_id', refused).count({ n: '*' })).toEqual([
        { n: '3' },
      ]);
      // Control: the right token is never refused by the failure limit.
      expect((await signIn(f, f.adminToken)).status).toBe(201);
    } finally {
      await f.close();
    }
  });

  test('when the sign-in comes from another site, or from nowhere the browser names, then 403; from the console itself, 201', async () => {
    const refused: Record<string, string>[] = [
      {},
      { 'Sec-Fetch-Site': 'cross-site' },
      { 'Sec-Fetch-Site': 'same-site' },
      { 'Sec-Fetch-Site': 'none' },
      { Host: 'billing.example', Origin: 'https://evil.example' },
      { Host: 'billing.example', Origin: 'http://billing.example.evil.example' },
      { Host: 'billing.example', Origin: 'null' },
      // Both present: both must agree.
      { Host: 'billing.example', Origin: 'http://billing.example', 'Sec-Fetch-Site': 'cross-site' },
    ];
    const before = await ours(t);
    for (const headers of refused) {
      const res = await signIn(t, t.adminToken, headers);
      expectError(res, 403, 'FORBIDDEN');
      expect(res.headers['set-cookie']).toBeUndefined();
    }
    expect(await ours(t)).toEqual(before);
    expect((await signIn(t, t.adminToken, { Host: 'billing.example', Origin: 'http://billing.example' })).status).toBe(201);
    expect((await signIn(t, t.adminToken, SAME_ORIGIN)).status).toBe(201);
  });

  test('when a cross-site HTML form posts the token, then it is refused (not JSON, not same-origin), and nothing is stored', async () => {
    const before = await ours(t);
    const form = await request(t.app)
      .post('/api/console/session')
      .set({ 'Sec-Fetch-Site': 'cross-site', Origin: 'https://evil.example' })
      .type('form')
      .send({ token: t.adminToken });
    expect(form.status).toBeGreaterThanOrEqual(400);
    expect(form.headers['set-cookie']).toBeUndefined();
    expect(await ours(t)).toEqual(before);
  });
});

describe('a session at work', () => {
  test('when admin routes get the cookie from the console, then they answer as for the token, and writes are audited with its actor', async () => {
    const h = await consoleHeaders(t);
    const created = await request(t.app)
      .post('/api/customers')
      .set(h)
      .send({ email: `console-${Date.now()}@example.com`, company_name: 'Console Ltd' });
    expect(created.status).toBe(201);
    const audit = await t.db('audit_log').where({ action: 'customer.create', target_id: created.body.customer.id }).first();
    expect(audit).toMatchObject({ actor: 'admin', actor_id: t.c.adminTokens.match(t.adminToken) });
    expect((await request(t.app).get(`/api/customers/${created.body.customer.id}`).set(h)).status).toBe(200);
  });

  test('when the cookie comes without a same-origin header, or from another site, then 403 and nothing is written', async () => {
    const h = await consoleHeaders(t);
    const email = `xsite-${Date.now()}@example.com`;
    for (const headers of [
      { Cookie: h.Cookie! },
      { Cookie: h.Cookie!, 'Sec-Fetch-Site': 'cross-site' },
      { Cookie: h.Cookie!, Origin: 'https://evil.example' },
    ]) {
      expectError(await request(t.app).post('/api/customers').set(headers).send({ email, company_name: 'Xsite Ltd' }), 403, 'FORBIDDEN');
      expectError(await request(t.app).get('/api/customers').set(headers), 403, 'FORBIDDEN');
    }
    expect(await t.db('customers').where({ email }).count({ n: '*' })).toEqual([{ n: '0' }]);
    // Control: the same request from the console.
    expect((await request(t.app).post('/api/customers').set(h).send({ email, company_name: 'Xsite Ltd' })).status).toBe(201);
  });

  test('when a cookie names no session (made up, malformed, or another name), then 401', async () => {
    const made = `billing_console=${'A'.repeat(43)}`;
    for (const Cookie of [made, 'billing_console=short', `__Host-billing_console=${'A'.repeat(43)}`]) {
      expectError(
        await request(t.app)
          .get('/api/customers')
          .set({ Cookie, ...SAME_ORIGIN }),
        401,
        'UNAUTHORIZED',
      );
    }
    expectError(await me(t, { Cookie: made, ...SAME_ORIGIN }), 401, 'UNAUTHORIZED');
  });

  test('when console routes get an admin bearer token instead of a session, then 401: they take a session only', async () => {
    expectError(await me(t, { Authorization: `Bearer ${t.adminToken}`, ...SAME_ORIGIN }), 401, 'UNAUTHORIZED');
    expectError(
      await request(t.app)
        .delete('/api/console/session')
        .set({ Authorization: `Bearer ${t.adminToken}`, ...SAME_ORIGIN }),
      401,
      'UNAUTHORIZED',
    );
  });
});

describe('how a session ends', () => {
  test('when no request comes for the idle time, then the session has ended; each request before it keeps it alive', async () => {
    const h = await consoleHeaders(t);
    skewMs = 29 * MIN;
    expect((await me(t, h)).status).toBe(200);
    skewMs = 58 * MIN; // 29 minutes after the last request
    expect((await me(t, h)).status).toBe(200);
    skewMs = 88 * MIN + 1_000; // 30 minutes and a second after it
    const res = await me(t, h);
    expectError(res, 401, 'UNAUTHORIZED');
    expect(res.body.error.message).toMatch(/session has ended/);
    // It is ended in the database, so it never comes back (not on an instance whose clock is behind).
    expect(
      (
        await t
          .db('console_sessions')
          .where({ id_hash: idHashOf(h.Cookie!) })
          .first()
      )?.revoked_reason,
    ).toBe('expired');
    skewMs = 0;
    expectError(await me(t, h), 401, 'UNAUTHORIZED');
  });

  test('when CONSOLE_SESSION_MAX has passed, then the session has ended however busy it was', async () => {
    const h = await consoleHeaders(t);
    for (const m of [20, 40, 60, 80, 100, 119]) {
      skewMs = m * MIN;
      expect([m, (await me(t, h)).status]).toEqual([m, 200]);
    }
    skewMs = 120 * MIN;
    expectError(await me(t, h), 401, 'UNAUTHORIZED');
  });

  test('when the admin signs out, then that session ends everywhere, the cookie is cleared, and it is audited; other sessions go on', async () => {
    const [a, b] = [await consoleHeaders(t), await consoleHeaders(t)];
    const out = await request(t.app).delete('/api/console/session').set(a);
    expect(out.status).toBe(204);
    expect((out.headers['set-cookie'] as unknown as string[])[0]).toMatch(/^billing_console=; Path=\/; HttpOnly; SameSite=Strict; Max-Age=0$/);
    expectError(await me(t, a), 401, 'UNAUTHORIZED');
    expectError(await request(t.app).get('/api/customers').set(a), 401, 'UNAUTHORIZED');
    expect((await me(t, b)).status).toBe(200);
    const row = await t
      .db('console_sessions')
      .where({ id_hash: idHashOf(a.Cookie!) })
      .first();
    expect(row?.revoked_reason).toBe('sign_out');
    const audit = await t.db('audit_log').where({ action: 'console.sign_out' }).orderBy('id', 'desc').first();
    expect(audit?.details).toEqual({ session: idHashOf(a.Cookie!).toString('hex').slice(0, 12) });
  });

  test('when the token a session came from leaves ADMIN_API_TOKEN, then the session is refused and revoked; one from a kept token goes on', async () => {
    const [kept, removed] = [newAdminToken(), newAdminToken()];
    const f = await createTestApp({ ADMIN_API_TOKEN: `${kept},${removed}` });
    try {
      const [k, r] = [await consoleHeaders(f, kept), await consoleHeaders(f, removed)];
      expect((await me(f, r)).status).toBe(200);
      f.c.adminTokens.replace([kept]); // as a SIGHUP re-reading ADMIN_API_TOKEN_FILE does
      expectError(await me(f, r), 401, 'UNAUTHORIZED');
      expectError(await request(f.app).get('/api/customers').set(r), 401, 'UNAUTHORIZED');
      expect(
        (
          await f
            .db('console_sessions')
            .where({ id_hash: idHashOf(r.Cookie!) })
            .first()
        )?.revoked_reason,
      ).toBe('token_removed');
      const audit = await f.db('audit_log').where({ action: 'console.session_revoked' }).orderBy('id', 'desc').first();
      expect(audit?.details).toMatchObject({ reason: 'token_removed', token: f.c.adminTokens.match(removed) ?? expect.stringMatching(/^admin:/) });
      // The token coming back does not revive it.
      f.c.adminTokens.replace([kept, removed]);
      expectError(await me(f, r), 401, 'UNAUTHORIZED');
      expect((await me(f, k)).status).toBe(200);
    } finally {
      await f.close();
    }
  });

  test('when two instances share the database, then a session made on one works on the other, and a sign-out on either ends it on both', async () => {
    const token = newAdminToken();
    const [a, b] = [await createTestApp({ ADMIN_API_TOKEN: token }), await createTestApp({ ADMIN_API_TOKEN: token })];
    try {
      const h = await consoleHeaders(a, token);
      expect((await request(b.app).get('/api/customers').set(h)).status).toBe(200);
      expect((await request(b.app).delete('/api/console/session').set(h)).status).toBe(204);
      expectError(await me(a, h), 401, 'UNAUTHORIZED');
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('fixation', () => {
  test('when the browser holds a session id from before sign-in (one an attacker planted, or its own), then sign-in answers a new one and the old never acts again', async () => {
    const planted = `billing_console=${'Q'.repeat(43)}`;
    const res = await signIn(t, t.adminToken, { ...SAME_ORIGIN, Cookie: planted });
    expect(res.status).toBe(201);
    const fresh = sessionCookieOf(res);
    expect(fresh).not.toBe(planted);
    expectError(await me(t, { Cookie: planted, ...SAME_ORIGIN }), 401, 'UNAUTHORIZED');

    // Its own earlier session is ended by the new sign-in.
    const again = await signIn(t, t.adminToken, { ...SAME_ORIGIN, Cookie: fresh });
    const next = sessionCookieOf(again);
    expect(next).not.toBe(fresh);
    expectError(await me(t, { Cookie: fresh, ...SAME_ORIGIN }), 401, 'UNAUTHORIZED');
    expect(
      (
        await t
          .db('console_sessions')
          .where({ id_hash: idHashOf(fresh) })
          .first()
      )?.revoked_reason,
    ).toBe('replaced');
    expect((await me(t, { Cookie: next, ...SAME_ORIGIN })).status).toBe(200);
  });
});

describe('in production', () => {
  test('when the cookie is made for production, then it is Secure and named __Host- (host-only, path /)', async () => {
    const sessions = createConsoleSessions({
      db: t.db,
      audit: t.c.audit,
      tokens: t.c.adminTokens,
      guard: t.c.limiters.authFailures,
      idleMs: 30 * MIN,
      maxMs: 12 * 60 * MIN,
      secure: true,
      now: Date.now,
    });
    const headers: Record<string, string> = { 'sec-fetch-site': 'same-origin' };
    const req = { headers, ip: '127.0.0.1', protocol: 'https', get: (n: string) => headers[n.toLowerCase()] } as unknown as Request;
    const { setCookie } = await sessions.signIn(req, t.adminToken, systemContext());
    expect(setCookie).toMatch(/^__Host-billing_console=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200; Secure$/);
    expect(sessions.clearCookie()).toBe('__Host-billing_console=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0; Secure');
  });
});

describe('rate limits', () => {
  test('when the console calls admin routes, then it spends RATE_LIMIT_CONSOLE by address, and tokens keep RATE_LIMIT_ADMIN to themselves', async () => {
    const f = await createTestApp({ RATE_LIMIT_ADMIN: '2/1h', RATE_LIMIT_CONSOLE: '5/1m' });
    try {
      const h = await consoleHeaders(f);
      for (let i = 0; i < 5; i++) expect([i, (await request(f.app).get('/api/customers').set(h)).status]).toEqual([i, 200]);
      expectError(await request(f.app).get('/api/customers').set(h), 429, 'RATE_LIMITED');
      // A made-up session cookie from the same address gets no budget of its own.
      expectError(
        await request(f.app)
          .get('/api/customers')
          .set({ Cookie: `billing_console=${'Z'.repeat(43)}`, ...SAME_ORIGIN }),
        429,
        'RATE_LIMITED',
      );
      // The token's budget was not spent by the console, nor the console's by the token.
      const bearer = { Authorization: `Bearer ${f.adminToken}` };
      expect((await request(f.app).get('/api/customers').set(bearer)).status).toBe(200);
      expect((await request(f.app).get('/api/customers').set(bearer)).status).toBe(200);
      expectError(await request(f.app).get('/api/customers').set(bearer), 429, 'RATE_LIMITED');
      expect(f.limited).toEqual(['console', 'console', 'admin']);
    } finally {
      await f.close();
    }
  });
});
