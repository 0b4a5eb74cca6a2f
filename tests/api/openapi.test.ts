import request from 'supertest';
import { routeTable } from '../../src/app';
import { DOCS_ASSETS, DOCS_CSP } from '../../src/http/docs-page';
import { createTestApp, TestApp } from '../helpers/test-app';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

test('when the document is fetched, then every route of the table is in it, with its method and authentication', async () => {
  const res = await request(t.app).get('/openapi.json');
  expect(res.status).toBe(200);
  const spec = res.body;
  expect(spec.openapi).toBe('3.1.0');
  const ids = new Set<string>();
  for (const r of routeTable(t.c)) {
    const op = spec.paths[r.path.replace(/:(\w+)/g, '{$1}')]?.[r.method];
    expect([r.method, r.path, !!op]).toEqual([r.method, r.path, true]);
    expect(op.summary).toBe(r.summary);
    ids.add(op.operationId);
    const expectedSecurity = { public: [], admin: [{ adminToken: [] }], customer: [{ customerKey: [] }], stripe: [{ stripeSignature: [] }], metrics: [{ metricsToken: [] }, { adminToken: [] }] }[r.auth];
    expect(op.security).toEqual(expectedSecurity);
    for (const p of r.path.match(/:(\w+)/g) ?? []) {
      expect(op.parameters.find((x: { name: string; in: string }) => x.name === p.slice(1) && x.in === 'path')).toBeDefined();
    }
  }
  expect(ids.size).toBe(routeTable(t.c).length);
});

test('when a request schema is documented, then it is the one that validates the request', async () => {
  const spec = (await request(t.app).get('/openapi.json')).body;
  const create = spec.paths['/api/customers'].post.requestBody.content['application/json'].schema;
  expect(create.required.sort()).toEqual(['company_name', 'email']);
  expect(create.additionalProperties).toBe(false);
  const list = spec.paths['/api/customers'].get.parameters.map((p: { name: string }) => p.name).sort();
  expect(list).toEqual(['cursor', 'email', 'limit', 'status']);
  const error = spec.components.schemas.Error;
  expect(error.properties.error.required).toEqual(['code', 'message', 'requestId']);
  // A real error response has exactly the documented shape.
  const res = await request(t.app).post('/api/customers').set('Authorization', `Bearer ${t.adminToken}`).send({});
  expect(Object.keys(res.body)).toEqual(['error']);
  for (const k of error.properties.error.required) expect(res.body.error[k]).toEqual(expect.any(String));
  expect(error.properties.error.properties.code.enum).toContain(res.body.error.code);
});

test('when the reference page is fetched, then it loads only its own assets and the document, under its own policy', async () => {
  const res = await request(t.app).get('/docs');
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toMatch(/text\/html/);
  expect(res.headers['content-security-policy']).toBe(DOCS_CSP);
  const refs = [...res.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
  expect(refs.length).toBe(DOCS_ASSETS.length);
  for (const ref of refs) expect(ref).toMatch(/^\/docs\/assets\/[a-z-]+\.(js|css)\?v=[0-9a-f]{16}$/);
  expect(res.text).not.toMatch(/https?:\/\/|<script>|<style|style=/);
  // Rendering every operation is the browser test's (tests/browser/docs-page.test.ts).
});
