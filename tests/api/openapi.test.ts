import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { routeTable } from '../../src/app';
import type { RouteDef } from '../../src/http/route';
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
    const expectedSecurity = {
      public: [],
      admin: [{ adminToken: [] }, { consoleSession: [] }],
      customer: [{ customerKey: [] }],
      stripe: [{ stripeSignature: [] }],
      metrics: [{ metricsToken: [] }, { adminToken: [] }, { consoleSession: [] }],
      console: [{ consoleSession: [] }],
    }[r.auth];
    expect(op.security).toEqual(expectedSecurity);
    for (const p of r.path.match(/:(\w+)/g) ?? []) {
      expect(op.parameters.find((x: { name: string; in: string }) => x.name === p.slice(1) && x.in === 'path')).toBeDefined();
    }
  }
  expect(ids.size).toBe(routeTable(t.c).length);
});

test('when the routes are registered (customer routes first), then no request could be taken by two routes', () => {
  const routes = routeTable(t.c);
  const pattern = (path: string) => new RegExp(`^${path.replace(/:\w+/g, '[^/]+')}$`);
  // An instance of `a` that would also reach `b` if one could: a parameter of `a` takes the
  // segment `b` has at the same place.
  const instance = (a: string, b: string) => {
    const bs = b.split('/');
    return a
      .split('/')
      .map((seg, i) => (seg.startsWith(':') ? (bs[i] && !bs[i].startsWith(':') ? bs[i] : 'x') : seg))
      .join('/');
  };
  // registerRoutes' order: express gives a request to the first route that matches.
  const order = [...routes.filter((r) => r.auth === 'customer'), ...routes.filter((r) => r.auth !== 'customer')];
  const paramsOf = (path: string, concrete: string) =>
    Object.fromEntries(
      path
        .split('/')
        .map((seg, i) => [seg, concrete.split('/')[i]] as const)
        .filter(([seg]) => seg.startsWith(':'))
        .map(([seg, v]) => [seg.slice(1), v]),
    );
  // Allowed: the route registered later refuses, by its params schema, the request both could take
  // (GET /api/invoices/:id refuses `upcoming`, and GET /api/invoices/upcoming comes first): the
  // router gives it to the first, and the document says the second never wanted it.
  const shadowed = (a: RouteDef, b: RouteDef, concrete: string) => {
    const later = order.indexOf(a) > order.indexOf(b) ? a : b;
    return later.request.params !== undefined && !later.request.params.safeParse(paramsOf(later.path, concrete)).success;
  };
  const clashes: string[] = [];
  for (const a of routes)
    for (const b of routes) {
      const concrete = instance(a.path, b.path);
      if (a !== b && a.method === b.method && pattern(b.path).test(concrete) && !shadowed(a, b, concrete)) clashes.push(`${a.method} ${a.path} / ${b.path}`);
    }
  expect(clashes).toEqual([]);
});

test('when a request schema is documented, then it is the one that validates the request', async () => {
  const spec = (await request(t.app).get('/openapi.json')).body;
  const create = spec.paths['/api/customers'].post.requestBody.content['application/json'].schema;
  expect(create.required.sort()).toEqual(['company_name', 'email']);
  expect(create.additionalProperties).toBe(false);
  const list = spec.paths['/api/customers'].get.parameters.map((p: { name: string }) => p.name).sort();
  expect(list).toEqual(['cursor', 'email', 'limit', 'q', 'status']);
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

describe('the contract a generated client sees', () => {
  const spec = () =>
    request(t.app)
      .get('/openapi.json')
      .then((r) => r.body);

  test('when POST /api/usage is documented, then its body is one event or a batch, its 201 and 200 (replay) answers and Idempotent-Replayed are published, and its errors are named', async () => {
    const op = (await spec()).paths['/api/usage'].post;
    const body = op.requestBody.content['application/json'].schema;
    expect(body.anyOf).toHaveLength(2);
    const [single, batch] = body.anyOf;
    expect(single.additionalProperties).toBe(false);
    expect(Object.keys(single.properties).sort()).toEqual(['idempotency_key', 'metric', 'occurred_at', 'quantity']);
    expect(batch.properties.events.items.required).toEqual(expect.arrayContaining(['metric', 'quantity', 'idempotency_key']));
    expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['200', '201', '401', '409', '422', '429']));
    expect(op.responses['200'].headers['Idempotent-Replayed'].schema).toEqual({ type: 'string', const: 'true' });
    expect(op.responses['409'].content['application/json'].schema.allOf[1].properties.error.properties.code.enum).toEqual(['IDEMPOTENCY_CONFLICT']);
    expect(op.parameters).toEqual([expect.objectContaining({ name: 'Idempotency-Key', in: 'header', required: false })]);
  });

  test('when the usage report is documented, then its CSV form is published as text/csv', async () => {
    const ok = (await spec()).paths['/api/reports/usage'].get.responses['200'];
    expect(Object.keys(ok.content).sort()).toEqual(['application/json', 'text/csv']);
    expect(ok.headers['Content-Disposition']).toBeDefined();
  });

  test('when a route is public or takes no body, then no authentication or body errors are published for it', async () => {
    const doc = await spec();
    expect(Object.keys(doc.paths['/health'].get.responses).sort()).toEqual(['200', '500']);
    expect(Object.keys(doc.paths['/ready'].get.responses).sort()).toEqual(['200', '500', '503']);
    expect(doc.paths['/api/plans/{code}'].delete.responses['204'].content).toBeUndefined();
    expect(doc.paths['/api/customers/{id}/subscriptions'].post.parameters.map((p: { name: string }) => p.name)).toEqual(['id', 'Idempotency-Key']);
  });
});

describe('types generated from the document (openapi-typescript)', () => {
  const root = path.resolve(__dirname, '../..');
  let dir: string;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-openapi-'));
    fs.writeFileSync(path.join(dir, 'openapi.json'), JSON.stringify((await request(t.app).get('/openapi.json')).body));
    execFileSync(
      process.execPath,
      [path.join(root, 'node_modules/openapi-typescript/bin/cli.js'), path.join(dir, 'openapi.json'), '-o', path.join(dir, 'api.d.ts')],
      { stdio: 'pipe' },
    );
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const compile = (code: string) => {
    fs.writeFileSync(
      path.join(dir, 'client.ts'),
      `import type { paths } from './api';\ntype UsageBody = paths['/api/usage']['post']['requestBody']['content']['application/json'];\n${code}\n`,
    );
    try {
      execFileSync(
        process.execPath,
        [path.join(root, 'node_modules/typescript/bin/tsc'), '--noEmit', '--strict', '--skipLibCheck', path.join(dir, 'client.ts')],
        { stdio: 'pipe' },
      );
      return '';
    } catch (err) {
      return String((err as { stdout?: Buffer }).stdout ?? err);
    }
  };

  test('when a client sends a usage body, then a right one compiles and a misspelt field or a wrong type does not', () => {
    expect(
      compile(
        `export const one: UsageBody = { metric: 'api_calls', quantity: 2, idempotency_key: 'k' };\nexport const many: UsageBody = { events: [{ metric: 'api_calls', quantity: '1.5', idempotency_key: 'k2', occurred_at: '2026-11-28T10:00:00Z' }] };`,
      ),
    ).toBe('');
    expect(compile(`export const typo: UsageBody = { metric: 'api_calls', quantiy: 2, idempotency_key: 'k' };`)).toMatch(/quantiy/);
    expect(compile(`export const bad: UsageBody = { events: [{ metric: 'api_calls', quantity: 1 }] };`)).toMatch(/idempotency_key/);
  });
});

describe('npm run openapi (src/cli/openapi.ts)', () => {
  test('when it runs without a database URL, then it prints byte for byte the document the app serves', async () => {
    const root = path.resolve(__dirname, '../..');
    // Nothing that names a database: no DATABASE_URL, no TEST_DATABASE_URL, no PG* variables.
    const version = process.env.npm_package_version;
    const env = { PATH: process.env.PATH ?? '', HOME: os.tmpdir(), ...(version ? { npm_package_version: version } : {}) };
    const printed = execFileSync(process.execPath, [path.join(root, 'node_modules/tsx/dist/cli.mjs'), path.join(root, 'src/cli/openapi.ts')], {
      cwd: root,
      env,
      stdio: 'pipe',
      timeout: 60_000,
    }).toString('utf8');
    const served = await request(t.app).get('/openapi.json');
    expect(served.status).toBe(200);
    expect(Object.keys(JSON.parse(printed).paths).length).toBeGreaterThan(30);
    expect(printed).toBe(`${JSON.stringify(served.body, null, 2)}\n`);
  }, 60_000);
});
