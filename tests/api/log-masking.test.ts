/**
 * Secrets put where they do not belong: a customer key in a URL (path or query string) must not
 * reach the log or come back in an error message; requests node's HTTP parser refuses leave a log
 * line and a metric, not silence.
 */
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import request from 'supertest';
import { createCustomer } from '../helpers/factories';
import { createTestApp, type TestApp } from '../helpers/test-app';
import { createHttpServer } from '../../src/http/http-classes';
import { observeClientErrors } from '../../src/http/client-errors';
import { maskSecrets } from '../../src/logger';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

const fakeKey = (customerId: string = randomUUID()) => `cust_${customerId}_${'Zq9xW3vB7nK2mP5rT8yL1cF4hJ6dS0gA_e-uXiOoQ0p'}`;

describe('a customer key in a URL', () => {
  test('when a key is put in the path of an unknown route, then the 404 message and the log carry it masked', async () => {
    const key = fakeKey();
    const secret = key.split('_').pop()!;
    const res = await request(t.app).get(`/api/keys/${key}`);
    expect(res.status).toBe(404);
    expect(res.body.error.message).not.toContain(secret);
    expect(res.body.error.message).toMatch(/cust_[0-9a-f-]{36}_\[masked\]/);
    const logged = t.logs.join('');
    expect(logged).not.toContain(secret);
    // Control: the line for that request is there, with the path masked.
    expect(logged).toContain('/api/keys/cust_');
  });

  test('when a key is sent in a query string, then the log names the query parameters but holds none of their values', async () => {
    const c = await createCustomer(t);
    const key = fakeKey(c.id);
    const secret = key.split('_').pop()!;
    const from = t.logs.length;
    const res = await request(t.app).get(`/health?api_key=${encodeURIComponent(key)}&verbose=secretvalue123`);
    expect(res.status).toBe(200);
    const lines = t.logs.slice(from).join('');
    expect(lines).not.toContain(secret);
    expect(lines).not.toContain('secretvalue123');
    expect(lines).toMatch(/"url":"\/health\?api_key&verbose"/);
  });

  test('when an error message or a logged error carries a key, then it is masked in the log', () => {
    const from = t.logs.length;
    const key = fakeKey();
    t.c.logger.error({ err: new Error(`lookup failed for ${key}`), note: `key=${key}` }, `could not use ${key}`);
    const line = t.logs.slice(from).join('');
    expect(line).not.toContain(key.split('_').pop()!);
    expect(line.match(/\[masked\]/g)!.length).toBeGreaterThanOrEqual(3);
  });

  test('when text carries keys, partial keys or display starts, then each is masked and the rest is kept', () => {
    const id = randomUUID();
    expect(maskSecrets(`a cust_${id}_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ b`)).toBe(`a cust_${id}_[masked] b`);
    expect(maskSecrets('x=cust_short-or-odd_value;')).toBe('x=cust_[masked];');
    expect(maskSecrets('nothing to see: customer 42')).toBe('nothing to see: customer 42');
    expect(maskSecrets(`customer cust_${id} has no key`)).toBe(`customer cust_${id} has no key`);
    // Masking twice (a message masked, then logged) changes nothing more.
    const once = maskSecrets(`a cust_${id}_abcdefghijk b cust_zzzz`);
    expect(maskSecrets(once)).toBe(once);
  });
});

describe('requests the HTTP parser refuses', () => {
  test('when a request is malformed at the HTTP level, then it is logged and counted, and the client gets 400', async () => {
    const server = createHttpServer(t.express);
    observeClientErrors(server, t.c.logger, t.c.metrics.clientErrors);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as net.AddressInfo;
    const before = (await t.c.metrics.clientErrors.get()).values.reduce((n, v) => n + v.value, 0);
    const from = t.logs.length;
    try {
      const answer = await new Promise<string>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => s.write('GET /health HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n'));
        let text = '';
        s.on('data', (d: Buffer) => (text += d.toString()));
        s.on('close', () => resolve(text));
      });
      expect(answer).toMatch(/^HTTP\/1\.1 400 Bad Request/);
      const after = await t.c.metrics.clientErrors.get();
      expect(after.values.reduce((n, v) => n + v.value, 0)).toBe(before + 1);
      expect(after.values.find((v) => v.labels.code === 'HPE_INVALID_HEADER_TOKEN')?.value).toBeGreaterThanOrEqual(1);
      const line = t.logs.slice(from).find((l) => l.includes('HTTP parser refused a request'));
      expect(line).toBeDefined();
      expect(JSON.parse(line!)).toMatchObject({ level: 40, code: 'HPE_INVALID_HEADER_TOKEN', ip: '127.0.0.1' });

      // Control: a well-formed request on the same server is answered and not counted.
      const ok = await request(server).get('/health');
      expect(ok.status).toBe(200);
      expect((await t.c.metrics.clientErrors.get()).values.reduce((n, v) => n + v.value, 0)).toBe(before + 1);
    } finally {
      server.close();
    }
  });
});
