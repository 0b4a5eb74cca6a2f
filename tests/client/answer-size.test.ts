/**
 * A server that answers without end (or announces a huge body) cannot fill an instance's memory: the
 * client reads at most MAX_ANSWER_BYTES of any answer and gives up, and the same client reads a
 * normal answer (control).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { BillingClient, BillingNetworkError } from '../../packages/client';
import { MAX_ANSWER_BYTES } from '../../packages/client/http';

let server: http.Server;
let url: string;
let sent = 0;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    if (req.headers['user-agent'] === 'endless') {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const pump = () => {
        while (!res.destroyed && sent < 64 * MAX_ANSWER_BYTES) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      res.write('{"customer":"');
      pump();
      return;
    }
    if (req.headers['user-agent'] === 'announced') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(MAX_ANSWER_BYTES + 1) });
      res.write('{');
      return; // never finishes: the client must not wait for it
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ customer: { id: 'c1' } }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

const client = (userAgent: string) => new BillingClient({ baseUrl: url, apiKey: 'cust_x_y', maxRetries: 0, timeoutMs: 20_000, userAgent });

test('when an answer goes on without end, then the client stops reading past the cap and fails', async () => {
  sent = 0;
  const err = await client('endless')
    .me()
    .catch((e: unknown) => e);
  expect(err).toBeInstanceOf(BillingNetworkError);
  expect(String((err as Error & { cause?: Error }).cause?.message)).toContain(`answer larger than ${MAX_ANSWER_BYTES} bytes`);
  // It stopped well before the server's 256 MB: the connection was cut, not read to the end.
  expect(sent).toBeLessThan(16 * MAX_ANSWER_BYTES);
});

test('when an answer announces more than the cap, then the client gives up at once', async () => {
  const started = Date.now();
  const err = await client('announced')
    .me()
    .catch((e: unknown) => e);
  expect(err).toBeInstanceOf(BillingNetworkError);
  expect(String((err as Error & { cause?: Error }).cause?.message)).toContain('answer larger than');
  expect(Date.now() - started).toBeLessThan(5_000);
});

test('when the answer is of a normal size, then it is read (control)', async () => {
  expect(await client('normal').me()).toEqual({ customer: { id: 'c1' } });
});
