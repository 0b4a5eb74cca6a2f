/**
 * The server's own request and response classes (src/http/http-classes.ts): objects made with
 * express's prototypes from the start, answering exactly as node's own classes do.
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import http from 'node:http';
import express from 'express';
import request from 'supertest';
import { createHttpServer } from '../../src/http/http-classes';
import { createCustomer } from '../helpers/factories';
import { createTestApp, type TestApp } from '../helpers/test-app';

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

async function call(port: number, method: string, path: string, headers: Record<string, string> = {}, body?: string) {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method, headers, body });
  const text = await res.text();
  return { status: res.status, headers: Object.fromEntries(res.headers), text };
}

test('when a request arrives, then it and its response already have the app’s prototypes, and express still works on them', async () => {
  const app = express();
  app.use(express.json());
  app.post('/echo/:id', (req, res) => {
    res.json({
      sameRequest: Object.getPrototypeOf(req) === app.request,
      sameResponse: Object.getPrototypeOf(res) === app.response,
      id: req.params.id,
      body: req.body as unknown,
      ip: req.ip,
      query: req.query,
      path: req.path,
    });
  });
  const server = createHttpServer(app);
  const port = await listen(server);
  try {
    const res = await call(port, 'POST', '/echo/42?x=1', { 'Content-Type': 'application/json' }, '{"a":[1,2]}');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({
      sameRequest: true,
      sameResponse: true,
      id: '42',
      body: { a: [1, 2] },
      ip: '127.0.0.1',
      query: { x: '1' },
      path: '/echo/42',
    });
  } finally {
    await new Promise((r) => server.close(r));
  }
});

test('when node’s request and response constructors are classes, then the server still makes its objects with express’s prototypes', async () => {
  // A later Node may turn these constructors into classes, which cannot be called with another
  // `this`: the server subclasses them (construction through super()), which works for both.
  const { IncomingMessage, ServerResponse } = http;
  const classes = http as { IncomingMessage: typeof http.IncomingMessage; ServerResponse: typeof http.ServerResponse };
  classes.IncomingMessage = class extends IncomingMessage {};
  classes.ServerResponse = class extends ServerResponse {} as typeof http.ServerResponse;
  const app = express();
  app.get('/p', (req, res) => {
    res.json({ sameRequest: Object.getPrototypeOf(req) === app.request, sameResponse: Object.getPrototypeOf(res) === app.response });
  });
  let server: http.Server;
  try {
    server = createHttpServer(app);
  } finally {
    classes.IncomingMessage = IncomingMessage;
    classes.ServerResponse = ServerResponse;
  }
  // Control: calling a class constructor with another `this`, as the server once did, throws.
  expect(() => (class extends IncomingMessage {} as unknown as (this: object) => void).call({})).toThrow(TypeError);
  const port = await listen(server);
  try {
    const res = await call(port, 'GET', '/p');
    expect(JSON.parse(res.text)).toEqual({ sameRequest: true, sameResponse: true });
  } finally {
    await new Promise((r) => server.close(r));
  }
});

describe('the service on its own server', () => {
  let t: TestApp;
  let server: http.Server;
  let port: number;
  let plain: http.Server;
  let plainPort: number;
  beforeAll(async () => {
    t = await createTestApp();
    // The server every API test calls (tests/helpers/test-app.ts), against node's own classes.
    server = t.app;
    port = await listen(server);
    plain = http.createServer(t.express);
    plainPort = await listen(plain);
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    await new Promise((r) => plain.close(r));
    await t.close();
  });

  /** The same request to node's classes and to ours: same status, same headers (but the varying ones), same body. */
  async function same(method: string, path: string, headers: Record<string, string> = {}, body?: () => string) {
    const ours = await call(port, method, path, headers, body?.());
    const theirs = await call(plainPort, method, path, headers, body?.());
    const drop = (h: Record<string, string>) => {
      const { date: _d, 'x-request-id': _r, ratelimit: _l, 'content-length': _c, ...rest } = h;
      return rest;
    };
    const text = (s: string) => s.replace(/[0-9a-f-]{36}/g, 'UUID').replace(/"(received_at|occurred_at)":"[^"]+"/g, '"$1":"T"');
    expect({ status: ours.status, headers: drop(ours.headers), text: text(ours.text) }).toEqual({
      status: theirs.status,
      headers: drop(theirs.headers),
      text: text(theirs.text),
    });
    return ours;
  }

  test('when a test calls request(t.app), then the request is made by the production server’s classes', async () => {
    const seen: unknown[] = [];
    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => void seen.push(Object.getPrototypeOf(req), Object.getPrototypeOf(res));
    // Before the app's own listener, which gives node's objects express's prototypes.
    t.app.prependListener('request', onRequest);
    try {
      expect((await request(t.app).get('/health')).status).toBe(200);
    } finally {
      t.app.off('request', onRequest);
    }
    expect(seen).toEqual([t.express.request, t.express.response]);
    // Control: node's own classes, as the plain server makes them, have other prototypes.
    plain.prependOnceListener('request', (req: http.IncomingMessage) => void seen.push(Object.getPrototypeOf(req)));
    expect((await call(plainPort, 'GET', '/health')).status).toBe(200);
    expect(seen[2]).toBe(http.IncomingMessage.prototype);
  });

  test('when the same requests are sent to node’s classes and to these, then the answers are the same', async () => {
    const c = await createCustomer(t);
    const json = { 'Content-Type': 'application/json', 'X-API-Key': c.apiKey };
    await same('GET', '/health');
    await same('HEAD', '/health');
    await same('GET', '/nope');
    await same('GET', '/api/me', { 'X-API-Key': 'cust_nonsense' });
    // Verified once first: a remembered key is rate-limited by its customer, a new one by its address.
    await call(port, 'GET', '/api/me', { 'X-API-Key': c.apiKey });
    await same('GET', '/api/me', { 'X-API-Key': c.apiKey });
    const k = `classes-${randomBytes(4).toString('hex')}`;
    // The first stores it; the replay answers the same from either server.
    expect((await call(port, 'POST', '/api/usage', json, JSON.stringify({ metric: 'api_calls', quantity: 1, idempotency_key: k }))).status).toBe(201);
    const replay = await same('POST', '/api/usage', json, () => JSON.stringify({ metric: 'api_calls', quantity: 1, idempotency_key: k }));
    expect(replay.status).toBe(200);
    await same('POST', '/api/usage', json, () => '{"metric":');
    await same('POST', '/api/usage', { ...json, 'Content-Type': 'text/plain' }, () => '{}');
    await same('GET', '/api/usage?group_by=nope', { 'X-API-Key': c.apiKey });
  });
});
