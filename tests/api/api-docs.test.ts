/** API_DOCS: who may read /openapi.json and /docs. */
import request from 'supertest';
import { routeTable } from '../../src/app';
import { expectError } from '../helpers/envelope';
import { createCustomer } from '../helpers/factories';
import { createTestApp, TestApp } from '../helpers/test-app';

const DOCS = ['/openapi.json', '/docs'];
const docsRoutes = (t: TestApp) => routeTable(t.c).filter((r) => DOCS.includes(r.path));

describe('when API_DOCS=public', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ API_DOCS: 'public' });
  });
  afterAll(() => t.close());

  test('then both answer without credentials', async () => {
    for (const path of DOCS) expect([path, (await request(t.app).get(path)).status]).toEqual([path, 200]);
    expect(docsRoutes(t).map((r) => r.auth)).toEqual(['public', 'public']);
  });
});

describe('when API_DOCS=admin', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ API_DOCS: 'admin' });
  });
  afterAll(() => t.close());

  test('then the route table says admin, and the document says so of them', async () => {
    expect(docsRoutes(t).map((r) => r.auth)).toEqual(['admin', 'admin']);
    const spec = (await request(t.app).get('/openapi.json').set('Authorization', `Bearer ${t.adminToken}`)).body;
    expect(spec.paths['/openapi.json'].get.security).toEqual([{ adminToken: [] }]);
    expect(spec.paths['/docs'].get.security).toEqual([{ adminToken: [] }]);
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

  test('then with an admin token both answer', async () => {
    const json = await request(t.app).get('/openapi.json').set('Authorization', `Bearer ${t.adminToken}`);
    expect(json.status).toBe(200);
    expect(json.body.openapi).toBe('3.1.0');
    const page = await request(t.app).get('/docs').set('Authorization', `Bearer ${t.adminToken}`);
    expect(page.status).toBe(200);
    expect(page.text).toContain('/api/customers');
  });
});

describe('when API_DOCS=off', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ API_DOCS: 'off' });
  });
  afterAll(() => t.close());

  test('then neither is served, with or without a token: 404 like any unknown path', async () => {
    for (const path of DOCS) {
      expectError(await request(t.app).get(path), 404, 'NOT_FOUND');
      expectError(await request(t.app).get(path).set('Authorization', `Bearer ${t.adminToken}`), 404, 'NOT_FOUND');
    }
    expect(docsRoutes(t)).toEqual([]);
  });
});
