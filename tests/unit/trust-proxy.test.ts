/**
 * TRUST_PROXY values that mean "trust everything", however they are spelled: production and
 * preflight refuse each, and the running service warns when a public peer was trusted.
 */
import type { Request, Response } from 'express';
import express from 'express';
import request from 'supertest';
import { runChecks, type Probes } from '../../src/cli/preflight-checks';
import { ConfigError, loadConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { MemoryCounter, rateLimiter } from '../../src/security/rate-limiter';

const production = {
  NODE_ENV: 'production',
  LICENSE_JWKS_URL: 'https://billing.example.com/.well-known/jwks.json',
  WEBHOOK_SECRETS_KEY: 'abababababababababababababababababababababababababababababababab',
  DATABASE_URL: 'postgres://u:p@db:5432/billing',
  ADMIN_API_TOKEN: 'a3f1c9e27b4d8f60c5e1a9b7d3f2e8c4a6b0d9e1f7c3a5b8d2e4f6a0c1b3d5e7',
  STRIPE_ENABLED: 'false',
  METRICS_TOKEN: 'f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f',
  LICENSE_SIGNING_KEYS: '{"kty":"OKP","crv":"Ed25519","d":"nBdKOX2FAqvI-cZTNdlgYfWITW4rsZfrTaqLakYxlGc","x":"yO4iBXcbZAqpwKMIqBKe4rk962muih682zz3cGCr0Mg"}',
};
const probes: Probes = { migrations: async () => ({ pending: [] }), redis: async () => null, audit: async () => ({ high: 0 }) };

function refusal(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.join('\n');
    throw err;
  }
  return '';
}

// Each of these lets a client anywhere on the internet name its own address in X-Forwarded-For.
const everything = [
  'true',
  '1000',
  '4',
  '0.0.0.0/0',
  '0.0.0.0/1,128.0.0.0/1',
  '0.0.0.0/128.0.0.0, 128.0.0.0/128.0.0.0',
  '0.0.0.0/2,64.0.0.0/2,128.0.0.0/2,192.0.0.0/2',
  '::/0',
  '::/1,8000::/1',
  '::ffff:0.0.0.0/96',
  '::ffff:0:0/97,::ffff:128.0.0.0/97',
  '10.0.0.0/7',
  '1.0.0.0/8',
  '2001:db8::/32',
  'loopback,0.0.0.0/1',
];

describe('TRUST_PROXY in production', () => {
  test.each(everything)('when it is %s, then the configuration is refused, naming the setting and not the value', (value) => {
    const text = refusal({ ...production, TRUST_PROXY: value });
    expect(text).toMatch(/^TRUST_PROXY: /m);
    for (const entry of value.split(',').filter((e) => /[/:]/.test(e))) expect(text).not.toContain(entry.trim());
  });

  test.each(everything)('when it is %s, then preflight fails', async (value) => {
    const results = await runChecks({ ...production, TRUST_PROXY: value }, probes, 1);
    expect(
      results
        .filter((r) => !r.ok)
        .map((r) => r.detail)
        .join('\n'),
    ).toMatch(/^TRUST_PROXY: /m);
  });

  // Controls: the proxies in front, by hop count, private subnet or their own single address.
  test.each([
    ['1', 1],
    ['3', 3],
    ['loopback', ['loopback']],
    ['loopback, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16', ['loopback', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16']],
    ['uniquelocal,linklocal', ['uniquelocal', 'linklocal']],
    ['fc00::/7', ['fc00::/7']],
    ['::ffff:10.0.0.0/104', ['::ffff:10.0.0.0/104']],
    ['100.64.0.0/10', ['100.64.0.0/10']],
    ['203.0.113.7', ['203.0.113.7']],
    ['2001:db8::1', ['2001:db8::1']],
  ])('when it is %s, then it is accepted', async (value, parsed) => {
    expect(loadConfig({ ...production, TRUST_PROXY: value }).trustProxy).toEqual(parsed);
    const results = await runChecks({ ...production, TRUST_PROXY: value }, probes, 1);
    expect(results.filter((r) => r.name === 'configuration valid for production').every((r) => r.ok)).toBe(true);
  });

  test('when it is not production, then a hop count or a wide subnet is allowed (a test bench), but an unreadable entry is not', () => {
    expect(loadConfig({ TRUST_PROXY: '1000' }).trustProxy).toBe(1000);
    expect(loadConfig({ TRUST_PROXY: '0.0.0.0/1,128.0.0.0/1' }).trustProxy).toEqual(['0.0.0.0/1', '128.0.0.0/1']);
    expect(refusal({ TRUST_PROXY: 'loopback,10.0.0.0/99' })).toBe(
      'TRUST_PROXY: entry 2 is not an address, address/prefix, or one of loopback, linklocal, uniquelocal',
    );
  });
});

describe('TRUST_PROXY at run time', () => {
  function checked(trust: unknown, socketAddress: string, ip: string) {
    const lines: { code?: string }[] = [];
    const logger = createLogger({ logLevel: 'warn', logPretty: false }, { write: (l: string) => void lines.push(JSON.parse(l) as { code?: string }) });
    const limiter = rateLimiter({
      name: 'test',
      limit: 10,
      windowMs: 60_000,
      store: new MemoryCounter(),
      key: () => 'k',
      logger,
      onLimited: () => undefined,
    });
    // As express leaves a request: the socket's peer, and req.ip worked out from X-Forwarded-For.
    const req = { ip, socket: { remoteAddress: socketAddress }, headers: { 'x-forwarded-for': ip }, app: { get: () => trust } } as unknown as Request;
    const res = { headersSent: false, getHeader: () => undefined, setHeader: () => undefined } as unknown as Response;
    limiter(req, res, () => undefined);
    return lines.map((l) => l.code);
  }

  test('when req.ip differs from a public socket address, then a warning says a public peer was trusted', () => {
    expect(checked(['0.0.0.0/0'], '203.0.113.9', '198.51.100.7')).toEqual(['TRUSTED_PUBLIC_PEER']);
    expect(checked(['::/0'], '::ffff:203.0.113.9', '198.51.100.7')).toEqual(['TRUSTED_PUBLIC_PEER']);
    // Controls: the proxy in front is private (the normal case), or nothing was taken from the header.
    expect(checked(1, '10.0.0.2', '198.51.100.7')).toEqual([]);
    expect(checked(1, '::ffff:127.0.0.1', '198.51.100.7')).toEqual([]);
    expect(checked(1, '203.0.113.9', '203.0.113.9')).toEqual([]);
  });

  test('when a request comes through a real app with a private peer and a trusted proxy, then nothing is logged', async () => {
    const lines: string[] = [];
    const logger = createLogger({ logLevel: 'warn', logPretty: false }, { write: (l: string) => void lines.push(l) });
    const app = express();
    app.set('trust proxy', 1);
    app.use(rateLimiter({ name: 't', limit: 5, windowMs: 60_000, store: new MemoryCounter(), key: (r) => r.ip!, logger, onLimited: () => undefined }));
    app.get('/', (_req, res) => void res.json({}));
    await request(app).get('/').set('X-Forwarded-For', '198.51.100.7').expect(200);
    expect(lines).toEqual([]);
  });
});
