/**
 * The console's page and files (src/modules/console/console-page.ts): its policy, its caching, the
 * URLs it answers, and ADMIN_CONSOLE=off.
 */
import fs from 'node:fs';
import path from 'node:path';
import request from 'supertest';
import { CONSOLE_CSP, CONSOLE_PAGES } from '../../src/modules/console/console-page';
import { consoleHeaders, SAME_ORIGIN } from '../helpers/console-session';
import { expectError } from '../helpers/envelope';
import { consoleAsset } from '../helpers/route-samples';
import { createTestApp, type TestApp } from '../helpers/test-app';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

const ID = '01900000-0000-7000-8000-000000000000';

test('when any console URL is asked for, then the page, under a policy of this origin only, revalidated every time', async () => {
  for (const [p] of CONSOLE_PAGES) {
    const res = await request(t.app).get(p.replace(':id', ID));
    expect([p, res.status, res.headers['content-type']]).toEqual([p, 200, 'text/html; charset=utf-8']);
    expect(res.headers['content-security-policy']).toBe(CONSOLE_CSP);
    expect(res.headers['cache-control']).toBe('no-cache');
    expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
    // No inline script or style: every script and stylesheet is a file of /console/assets.
    expect(res.text).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/);
    expect(res.text).not.toMatch(/<style|\sstyle=/);
    expect(res.text).toMatch(/<script type="module" crossorigin src="\/console\/assets\/index-[\w-]+\.js"><\/script>/);
  }
  expect(CONSOLE_CSP).not.toMatch(/unsafe|data:|\*|http/);
});

test('when a hashed file is asked for, then it is cached for a year as immutable; any other name is a 404 in the envelope', async () => {
  for (const ext of ['.js', '.css', '.svg']) {
    const res = await request(t.app).get(`/console/assets/${consoleAsset(ext)}`);
    expect([ext, res.status, res.headers['cache-control']]).toEqual([ext, 200, 'public, max-age=31536000, immutable']);
  }
  expect((await request(t.app).get(`/console/assets/${consoleAsset('.js')}`)).headers['content-type']).toBe('text/javascript; charset=utf-8');
  for (const name of ['nope.js', '..%2F..%2Fpackage.json', '..%2Findex.html', 'index.html', '%2Fetc%2Fpasswd']) {
    expectError(await request(t.app).get(`/console/assets/${name}`), 404, 'NOT_FOUND');
  }
});

test('when a path under /console is not a console page, then 404 in the envelope, not the page', async () => {
  for (const p of ['/console/nope', '/console/customers/not-an-id', '/console/customers/x/y', '/console/index.html']) {
    expectError(await request(t.app).get(p), 404, 'NOT_FOUND');
  }
});

test("when the console's router is read, then its pages are exactly the URLs the service serves", () => {
  const app = fs.readFileSync(path.resolve(__dirname, '../../console/src/app.tsx'), 'utf8');
  const list = /export const PAGES = \[([^\]]*)\]/.exec(app)![1]!;
  const pages = [...list.matchAll(/'([^']+)'/g)].map((m) => m[1]);
  expect(pages).toEqual(CONSOLE_PAGES.map(([p]) => p));
});

test('when ADMIN_CONSOLE=off, then the page, its files and the session routes are 404, and a session cookie opens nothing', async () => {
  const session = await consoleHeaders(t);
  const off = await createTestApp({ ADMIN_CONSOLE: 'off', ADMIN_API_TOKEN: t.adminToken });
  try {
    expectError(await request(off.app).get('/console'), 404, 'NOT_FOUND');
    expectError(await request(off.app).get(`/console/assets/${consoleAsset('.js')}`), 404, 'NOT_FOUND');
    expectError(await request(off.app).post('/api/console/session').set(SAME_ORIGIN).send({ token: t.adminToken }), 404, 'NOT_FOUND');
    expectError(await request(off.app).get('/api/customers').set(session), 401, 'UNAUTHORIZED');
    // Control: the same session on the instance with the console on.
    expect((await request(t.app).get('/api/customers').set(session)).status).toBe(200);
    expect((await request(off.app).get('/api/customers').set('Authorization', `Bearer ${t.adminToken}`)).status).toBe(200);
  } finally {
    await off.close();
  }
});
