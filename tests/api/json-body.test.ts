/**
 * Reading JSON bodies: the common request is read by json-body.ts itself, every other one by
 * express.json. Both must answer alike, over real sockets (chunks, hang-ups, compression).
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { gzipSync } from 'node:zlib';
import type { Server } from 'node:http';
import request from 'supertest';
import { expectError } from '../helpers/envelope';
import { createCustomer, type CreatedCustomer } from '../helpers/factories';
import { createTestApp, type TestApp } from '../helpers/test-app';

let t: TestApp;
let c: CreatedCustomer;
let server: Server;
let port: number;
beforeAll(async () => {
  t = await createTestApp();
  c = await createCustomer(t);
  server = await new Promise<Server>((resolve) => {
    const s = t.app.listen(0, '127.0.0.1', () => resolve(s));
  });
  port = (server.address() as net.AddressInfo).port;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  await t.close();
});

const key = () => `body-${randomBytes(6).toString('hex')}`;
const usage = () => request(t.app).post('/api/usage').set('X-API-Key', c.apiKey);
const stored = async (k: string) => Number((await t.db('usage_events').where({ idempotency_key: k }).count<{ count: string }[]>('* as count'))[0]!.count);

/** Sends a raw HTTP request in pieces (with pauses between them) and returns the status line and body. */
function raw(head: string, pieces: Buffer[], opts: { hangUp?: boolean } = {}): Promise<{ status: number; body: string } | null> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let answer = '';
    sock.on('data', (d: Buffer) => (answer += d.toString()));
    sock.on('error', reject);
    sock.on('close', () => {
      if (opts.hangUp) return resolve(null);
      const status = Number(/^HTTP\/1\.1 (\d+)/.exec(answer)?.[1]);
      resolve({ status, body: answer.slice(answer.indexOf('\r\n\r\n') + 4) });
    });
    // Each piece is handed to the kernel before the next (and before a hang-up): on a loaded machine
    // a destroy() right after write() would drop what was still queued, and the server would never
    // see the request at all.
    const send = (b: string | Buffer) => new Promise<void>((r, j) => sock.write(b, (err) => (err ? j(err) : r())));
    sock.once('connect', () => {
      void (async () => {
        await send(head);
        for (const p of pieces) {
          await new Promise((r) => setTimeout(r, 5));
          await send(p);
        }
        if (opts.hangUp) sock.destroy();
      })().catch(reject);
    });
  });
}

const headOf = (length: number, extra = '') =>
  `POST /api/usage HTTP/1.1\r\nHost: x\r\nX-API-Key: ${c.apiKey}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\nConnection: close\r\n${extra}\r\n`;

describe('JSON bodies', () => {
  test.each([
    ['application/json', 201],
    ['application/json; charset=utf-8', 201],
    ['Application/JSON; Charset="UTF-8"', 201],
  ])('when the Content-Type is %s, then the body is read', async (type, status) => {
    const k = key();
    const res = await usage()
      .set('Content-Type', type)
      .send(JSON.stringify({ metric: 'api_calls', quantity: 2, idempotency_key: k }));
    expect(res.status).toBe(status);
    expect(await stored(k)).toBe(1);
  });

  test.each([
    ['a JSON string', '"text"'],
    ['a number', '42'],
    ['whitespace only', '   '],
    ['broken JSON', '{"metric": '],
    ['JSON with a trailing comma', '{"metric":"api_calls",}'],
  ])('when the body is %s, then 400 INVALID_JSON', async (_name, body) => {
    expectError(await usage().set('Content-Type', 'application/json').send(body), 400, 'INVALID_JSON');
  });

  test('when the body starts with a byte-order mark, then it is read as express.json reads it', async () => {
    const k = key();
    const res = await usage()
      .set('Content-Type', 'application/json')
      .send(`\ufeff${JSON.stringify({ metric: 'api_calls', quantity: 1, idempotency_key: k })}`);
    expect(res.status).toBe(201);
  });

  test('when the body arrives in many small pieces, split inside a multi-byte character, then it is read whole', async () => {
    const name = `Zürich 東京 ${randomBytes(3).toString('hex')}`;
    const body = Buffer.from(JSON.stringify({ email: `${key()}@example.com`, company_name: name }));
    const pieces = Array.from({ length: Math.ceil(body.length / 3) }, (_, i) => body.subarray(i * 3, i * 3 + 3));
    const head = `POST /api/customers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t.adminToken}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
    const res = await raw(head, pieces);
    expect(res!.status).toBe(201);
    expect((JSON.parse(res!.body) as { customer: { company_name: string } }).customer.company_name).toBe(name);
  });

  test('when the body is chunked (no Content-Length), then express.json reads it', async () => {
    const k = key();
    const body = JSON.stringify({ metric: 'api_calls', quantity: 1, idempotency_key: k });
    const head = `POST /api/usage HTTP/1.1\r\nHost: x\r\nX-API-Key: ${c.apiKey}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`;
    const res = await raw(head, [Buffer.from(`${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`)]);
    expect(res!.status).toBe(201);
    expect(await stored(k)).toBe(1);
  });

  test('when the body is gzip-compressed, then express.json inflates it', async () => {
    const k = key();
    const zipped = gzipSync(JSON.stringify({ metric: 'api_calls', quantity: 1, idempotency_key: k }));
    const res = await raw(headOf(zipped.length, 'Content-Encoding: gzip\r\n'), [zipped]);
    expect(res!.status).toBe(201);
    expect(await stored(k)).toBe(1);
  });

  test('when the charset is not UTF-8, then 415; when the type is not JSON, then 415', async () => {
    expectError(await usage().set('Content-Type', 'application/json; charset=latin1').send('{"metric":"api_calls"}'), 415, 'UNSUPPORTED_MEDIA_TYPE');
    expectError(await usage().set('Content-Type', 'application/json-patch+json').send('[]'), 415, 'UNSUPPORTED_MEDIA_TYPE');
    expectError(await usage().set('Content-Type', 'text/plain').send('{}'), 415, 'UNSUPPORTED_MEDIA_TYPE');
  });

  test('when the declared length is over the limit, then 413 before the body is read', async () => {
    const big = JSON.stringify({ metric: 'api_calls', quantity: 1, idempotency_key: 'x'.repeat(2 * 1024 * 1024) });
    const res = await request(t.app).post('/api/customers').set('Authorization', `Bearer ${t.adminToken}`).set('Content-Type', 'application/json').send(big);
    expectError(res, 413, 'PAYLOAD_TOO_LARGE');
  });

  test('when the client hangs up halfway through the body, then nothing is stored, the server goes on, and the access log says 499', async () => {
    const k = key();
    const body = Buffer.from(JSON.stringify({ metric: 'api_calls', quantity: 1, idempotency_key: k }));
    await raw(headOf(body.length), [body.subarray(0, 10)], { hangUp: true });
    // The server sees the hang-up when the socket closes: wait for its access line (a loaded machine takes longer than 100 ms).
    const logged = () => t.logs.some((l) => l.includes('"status":499') && l.includes('/api/usage'));
    for (const end = Date.now() + 10_000; !logged() && Date.now() < end;) await new Promise((r) => setTimeout(r, 50));
    expect(await stored(k)).toBe(0);
    expect(logged()).toBe(true);
    // The next request on a new connection is served as usual.
    const k2 = key();
    await usage().send({ metric: 'api_calls', quantity: 1, idempotency_key: k2 }).expect(201);
  });
});
