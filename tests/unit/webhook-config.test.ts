import { loadConfig } from '../../src/config';
import { configProblems } from '../helpers/config-problems';

const strong = 'a3f1c9e27b4d8f60c5e1a9b7d3f2e8c4a6b0d9e1f7c3a5b8d2e4f6a0c1b3d5e7';
const licenseKey = '{"kty":"OKP","crv":"Ed25519","d":"nBdKOX2FAqvI-cZTNdlgYfWITW4rsZfrTaqLakYxlGc","x":"yO4iBXcbZAqpwKMIqBKe4rk962muih682zz3cGCr0Mg"}';
const KEY_HEX = 'ab'.repeat(32);
const prod = {
  NODE_ENV: 'production',
  DATABASE_URL: 'postgres://u:p@db:5432/billing',
  ADMIN_API_TOKEN: strong,
  STRIPE_ENABLED: 'false',
  LICENSE_SIGNING_KEYS: licenseKey,
  LICENSE_JWKS_URL: 'https://billing.example.com/.well-known/jwks.json',
  WEBHOOK_SECRETS_KEY: KEY_HEX,
};
const dev = { NODE_ENV: 'development' };

const problems = configProblems;

describe('events and webhook settings', () => {
  test('when nothing is set, then the documented defaults apply', () => {
    const c = loadConfig(dev);
    expect(c.events).toEqual({ retentionDays: 30 });
    expect(c.webhooks).toMatchObject({
      enabled: true,
      secretsKeys: [],
      timeoutMs: 10_000,
      disableAfterMs: 5 * 86_400_000,
      allowHttp: true,
      allowPrivate: false,
      concurrency: 200,
      endpointConcurrency: 50,
    });
    expect(c.webhooks.retryScheduleMs).toEqual([5, 300, 1_800, 7_200, 18_000, 36_000, 36_000, 50_400, 50_400, 50_400].map((s) => s * 1000));
    // About 3 days of retries.
    const total = c.webhooks.retryScheduleMs.reduce((a, b) => a + b, 0) / 86_400_000;
    expect(total).toBeGreaterThan(2.5);
    expect(total).toBeLessThan(3.5);
    expect(c.license.expiringSoonDays).toBe(7);
    expect(Object.isFrozen(c.webhooks)).toBe(true);
  });

  test('when WEBHOOK_RETRY_SCHEDULE, WEBHOOK_TIMEOUT and WEBHOOK_DISABLE_AFTER are given, then they are parsed to milliseconds', () => {
    const c = loadConfig({ ...dev, WEBHOOK_RETRY_SCHEDULE: '1s, 30s,2m ,1h,1d', WEBHOOK_TIMEOUT: '30s', WEBHOOK_DISABLE_AFTER: '12h' });
    expect(c.webhooks.retryScheduleMs).toEqual([1_000, 30_000, 120_000, 3_600_000, 86_400_000]);
    expect(c.webhooks.timeoutMs).toBe(30_000);
    expect(c.webhooks.disableAfterMs).toBe(43_200_000);
  });

  test.each([
    ['WEBHOOK_RETRY_SCHEDULE', '5s,soon,1h'],
    ['WEBHOOK_RETRY_SCHEDULE', '5s,8d'],
    ['WEBHOOK_RETRY_SCHEDULE', ','],
    ['WEBHOOK_RETRY_SCHEDULE', Array.from({ length: 51 }, () => '1s').join(',')],
    ['WEBHOOK_TIMEOUT', '0s'],
    ['WEBHOOK_TIMEOUT', '2d'],
    ['WEBHOOK_DISABLE_AFTER', 'forever'],
    ['EVENT_RETENTION_DAYS', '0'],
    ['EVENT_RETENTION_DAYS', 'thirty'],
    ['LICENSE_EXPIRING_SOON_DAYS', '0'],
    ['WEBHOOK_CONCURRENCY', '0'],
    ['WEBHOOK_ALLOW_HTTP', 'maybe'],
  ])('when %s is %s, then it is refused, named', (name, value) => {
    expect(problems({ ...dev, [name]: value })).toMatch(new RegExp(`^.*${name}: `, 'm'));
  });

  test('when WEBHOOK_ALLOW_HTTP is unset, then http is allowed in development and test and refused in production; set, it decides', () => {
    expect(loadConfig(dev).webhooks.allowHttp).toBe(true);
    expect(loadConfig({ NODE_ENV: 'test' }).webhooks.allowHttp).toBe(true);
    expect(loadConfig(prod).webhooks.allowHttp).toBe(false);
    expect(loadConfig({ ...dev, WEBHOOK_ALLOW_HTTP: 'false' }).webhooks.allowHttp).toBe(false);
    expect(loadConfig({ ...prod, WEBHOOK_ALLOW_HTTP: 'true' }).webhooks.allowHttp).toBe(true);
  });

  test('when WEBHOOK_ALLOW_PRIVATE=true in production, then it refuses to start; in development it is allowed (control)', () => {
    expect(problems({ ...prod, WEBHOOK_ALLOW_PRIVATE: 'true' })).toMatch(/WEBHOOK_ALLOW_PRIVATE: must not be true when NODE_ENV=production/);
    expect(loadConfig({ ...prod, WEBHOOK_ALLOW_PRIVATE: 'false' }).webhooks.allowPrivate).toBe(false);
    expect(loadConfig({ ...dev, WEBHOOK_ALLOW_PRIVATE: 'true' }).webhooks.allowPrivate).toBe(true);
  });

  test('when WEBHOOK_SECRETS_KEY is missing in production, then it refuses to start and says how to make one', () => {
    const { WEBHOOK_SECRETS_KEY: _omitted, ...without } = prod;
    expect(problems(without)).toMatch(/WEBHOOK_SECRETS_KEY: required when NODE_ENV=production \(make one: openssl rand -base64 32\)/);
  });

  test.each([
    ['too short', 'ab'.repeat(16)],
    ['not hex or base64', 'this-is-not-a-key-but-a-secret-value-zzzzzzzzzzzzzzzzzzzzzzzzzz'],
    ['base64 of 31 bytes', Buffer.alloc(31, 9).toString('base64')],
    ['one good, one bad', `${KEY_HEX},${'cd'.repeat(20)}`],
  ])('when WEBHOOK_SECRETS_KEY is %s, then it is refused without echoing it', (_label, value) => {
    const message = problems({ ...prod, WEBHOOK_SECRETS_KEY: value });
    expect(message).toMatch(/WEBHOOK_SECRETS_KEY: must be 32 random bytes in base64 or hex/);
    for (const part of value.split(',')) expect(message).not.toContain(part.slice(0, 16));
  });

  test('when WEBHOOK_SECRETS_KEY holds keys in hex and base64, then each is 32 bytes, the first encrypting', () => {
    const b64 = Buffer.alloc(32, 5).toString('base64');
    const c = loadConfig({ ...prod, WEBHOOK_SECRETS_KEY: `${b64}, ${KEY_HEX}` });
    expect(c.webhooks.secretsKeys).toEqual([Buffer.alloc(32, 5), Buffer.from(KEY_HEX, 'hex')]);
  });
});
