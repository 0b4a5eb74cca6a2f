/** API_DOCS: who may read /openapi.json, /docs and the page's assets; and which assets there are. */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { routeTable } from '../../src/app';
import { expectError } from '../helpers/envelope';
import { createCustomer } from '../helpers/factories';
import { createTestApp, TestApp } from '../helpers/test-app';
import { DOCS_ASSETS, DOCS_CSP } from '../../src/http/docs-page';

const DOCS = ['/openapi.json', '/docs', '/docs/assets/swagger-ui-bundle.js'];
const docsRoutes = (t: TestApp) => routeTable(t.c).filter((r) => r.path === '/openapi.json' || r.path.startsWith('/docs'));

/** A request with its path sent exactly as written: supertest would resolve the dot segments first. */
function rawGet(t: TestApp, rawPath: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const server = t.app.listen(0, '127.0.0.1');
  return new Promise((resolve, reject) => {
    server.once('listening', () => {
      const { port } = server.address() as AddressInfo;
      http
        .get({ host: '127.0.0.1', port, path: rawPath, headers }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => server.close(() => resolve({ status: res.statusCode!, body })));
        })
        .on('error', (err) => server.close(() => reject(err)));
    });
  });
}

describe('when API_DOCS=public', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ API_DOCS: 'public' });
  });
  afterAll(() => t.close());

  test('then all answer without credentials', async () => {
    for (const path of DOCS) expect([path, (await request(t.app).get(path)).status]).toEqual([path, 200]);
    expect(docsRoutes(t).map((r) => r.auth)).toEqual(['public', 'public', 'public']);
  });

  test('then each asset of the allow-list is served from the package with its type and a year of public caching', async () => {
    const types: Record<string, RegExp> = { js: /^text\/javascript; charset=utf-8$/, css: /^text\/css; charset=utf-8$/ };
    for (const name of DOCS_ASSETS) {
      const res = await request(t.app).get(`/docs/assets/${name}`);
      expect([name, res.status]).toEqual([name, 200]);
      expect(res.headers['content-type']).toMatch(types[name.split('.').pop()!]!);
      expect(res.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      // The page's policy is the page's: assets keep helmet's.
      expect(res.headers['content-security-policy']).not.toBe(DOCS_CSP);
      expect(res.text.length).toBeGreaterThan(100);
    }
    const bundle = await request(t.app).get('/docs/assets/swagger-ui-bundle.js');
    const onDisk = fs.readFileSync(require.resolve('swagger-ui-dist/swagger-ui-bundle.js'), 'utf8');
    expect(bundle.text).toBe(onDisk);
  });

  test('then a name off the allow-list, or a path that climbs out, is a 404 like any unknown path', async () => {
    const attempts = [
      '/docs/assets/../../package.json',
      '/docs/assets/..%2F..%2Fpackage.json',
      '/docs/assets/%2e%2e%2f%2e%2e%2fpackage.json',
      '/docs/assets/..%5C..%5Cpackage.json',
      '/docs/assets/%2e%2e',
      '/docs/assets/package.json',
      '/docs/assets/swagger-ui-bundle.js.map',
      '/docs/assets/index.html',
      '/docs/assets/swagger-ui-bundle.js%00.css',
      '/docs/assets/SWAGGER-UI.CSS',
      '/docs/assets/',
      '/docs/assets/swagger-ui.css/x',
    ];
    for (const p of attempts) {
      const res = await rawGet(t, p);
      expect([p, res.status]).toEqual([p, 404]);
      expect([p, JSON.parse(res.body).error.code]).toEqual([p, 'NOT_FOUND']);
      expect(res.body).not.toContain('"name": "billing-service"');
    }
  });
});

describe('when API_DOCS=admin', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ API_DOCS: 'admin' });
  });
  afterAll(() => t.close());

  test('then the route table says admin, and the document says so of them', async () => {
    expect(docsRoutes(t).map((r) => r.auth)).toEqual(['admin', 'admin', 'admin']);
    const spec = (await request(t.app).get('/openapi.json').set('Authorization', `Bearer ${t.adminToken}`)).body;
    expect(spec.paths['/openapi.json'].get.security).toEqual([{ adminToken: [] }, { consoleSession: [] }]);
    expect(spec.paths['/docs'].get.security).toEqual([{ adminToken: [] }, { consoleSession: [] }]);
    expect(spec.paths['/docs/assets/{file}'].get.security).toEqual([{ adminToken: [] }, { consoleSession: [] }]);
  });

  test('then without an admin token, or with a customer key, each is a 401 that reveals nothing, and the failure is audited', async () => {
    const c = await createCustomer(t);
    for (const path of DOCS) {
      for (const headers of [{}, { Authorization: 'Bearer wrong' }, { 'X-API-Key': c.apiKey }]) {
        const res = await request(t.app).get(path).set(headers);
        expectError(res, 401, 'UNAUTHORIZED');
        expect(res.text).not.toContain('/api/customers');
        const rows = await t.db('audit_log').where({ request_id: res.headers['x-request-id'] });
        expect(rows).toHaveLength(1);
        expect(rows[0]).toMatchObject({ action: 'auth.admin_token', outcome: 'failure' });
      }
    }
  });

  test('then with an admin token all answer, and assets are cached by the browser only', async () => {
    const json = await request(t.app).get('/openapi.json').set('Authorization', `Bearer ${t.adminToken}`);
    expect(json.status).toBe(200);
    expect(json.body.openapi).toBe('3.1.0');
    const page = await request(t.app).get('/docs').set('Authorization', `Bearer ${t.adminToken}`);
    expect(page.status).toBe(200);
    expect(page.headers['content-security-policy']).toBe(DOCS_CSP);
    expect(page.text).toContain('/docs/assets/swagger-ui-bundle.js');
    const asset = await request(t.app).get('/docs/assets/swagger-ui.css').set('Authorization', `Bearer ${t.adminToken}`);
    expect(asset.status).toBe(200);
    expect(asset.headers['cache-control']).toBe('private, max-age=31536000, immutable');
  });

  test('then a traversal is a 401 without a token and a 404 with one', async () => {
    expectError(await request(t.app).get('/docs/assets/..%2F..%2Fpackage.json'), 401, 'UNAUTHORIZED');
    const res = await rawGet(t, '/docs/assets/..%2F..%2Fpackage.json', { Authorization: `Bearer ${t.adminToken}` });
    expect(res.status).toBe(404);
  });
});

describe('when API_DOCS=off', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ API_DOCS: 'off' });
  });
  afterAll(() => t.close());

  test('then none is served, with or without a token: 404 like any unknown path', async () => {
    for (const path of DOCS) {
      expectError(await request(t.app).get(path), 404, 'NOT_FOUND');
      expectError(await request(t.app).get(path).set('Authorization', `Bearer ${t.adminToken}`), 404, 'NOT_FOUND');
    }
    expect(docsRoutes(t)).toEqual([]);
  });
});
