import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig, SETTING_DESCRIPTIONS, SETTING_NAMES } from '../../src/config';
import { configProblems } from '../helpers/config-problems';

const strong = 'a3f1c9e27b4d8f60c5e1a9b7d3f2e8c4a6b0d9e1f7c3a5b8d2e4f6a0c1b3d5e7';
const licenseKey = '{"kty":"OKP","crv":"Ed25519","d":"nBdKOX2FAqvI-cZTNdlgYfWITW4rsZfrTaqLakYxlGc","x":"yO4iBXcbZAqpwKMIqBKe4rk962muih682zz3cGCr0Mg"}';
const prod = {
  NODE_ENV: 'production',
  DATABASE_URL: 'postgres://u:p@db:5432/billing',
  STRIPE_ENABLED: 'false',
  LICENSE_SIGNING_KEYS: licenseKey,
  LICENSE_JWKS_URL: 'https://billing.example.com/.well-known/jwks.json',
  WEBHOOK_SECRETS_KEY: 'abababababababababababababababababababababababababababababababab',
};

const problems = configProblems;

describe('production refuses to start without what it needs', () => {
  test('when DATABASE_URL is missing, then the message names it', () => {
    expect(problems({ NODE_ENV: 'production', ADMIN_API_TOKEN: strong })).toMatch(/DATABASE_URL: required when NODE_ENV=production/);
  });

  test('when ADMIN_API_TOKEN is missing, then the message names it and says how to make one', () => {
    expect(problems(prod)).toMatch(/ADMIN_API_TOKEN: required.*openssl rand -hex 32/);
  });

  test.each([
    ['too short', 'a3f1c9e27b4d8f60c5e1a9b7', /too short/],
    ['one repeated character', 'a'.repeat(64), /entropy/],
    ['a repeated word', 'password'.repeat(5), /entropy/],
    ['a repeated pattern', 'ab12cd34'.repeat(5), /entropy/],
    ['a well-known sequence', 'changeme-changeme-please-Xy7!kQ2#', /entropy/],
    ['spaces inside', 'a3f1c9e27b4d8f60 c5e1a9b7d3f2e8c4a6b0d9e1', /printable/],
  ])('when ADMIN_API_TOKEN is %s, then it is refused with the reason', (_label, token, reason) => {
    const message = problems({ ...prod, ADMIN_API_TOKEN: token });
    expect(message).toMatch(reason);
    expect(message).not.toContain(token); // a setting's value is never echoed
  });

  test('when TRUST_PROXY is true, then production refuses it: any client could choose its own address', () => {
    const text = problems({ ...prod, ADMIN_API_TOKEN: strong, TRUST_PROXY: 'true' });
    expect(text).toMatch(/TRUST_PROXY: "true" trusts any X-Forwarded-For/);
    expect(loadConfig({ ...prod, ADMIN_API_TOKEN: strong, TRUST_PROXY: '1' }).trustProxy).toBe(1);
    expect(loadConfig({ ...prod, ADMIN_API_TOKEN: strong, TRUST_PROXY: 'loopback' }).trustProxy).toEqual(['loopback']);
  });

  test('when Stripe is not explicitly off, then production needs its key and the webhook secret', () => {
    const base = { ...prod, ADMIN_API_TOKEN: strong, STRIPE_ENABLED: '' };
    expect(problems(base)).toMatch(/STRIPE_SECRET_KEY: required when NODE_ENV=production \(or turn Stripe off explicitly: STRIPE_ENABLED=false\)/);
    expect(problems({ ...base, STRIPE_SECRET_KEY: 'sk_live_abc123' })).toMatch(/STRIPE_WEBHOOK_SECRET: required/);
    expect(() => loadConfig({ ...base, STRIPE_SECRET_KEY: 'sk_live_abc123', STRIPE_WEBHOOK_SECRET: 'whsec_abc123' })).not.toThrow();
    expect(loadConfig({ ...prod, ADMIN_API_TOKEN: strong }).stripe.secretKey).toBeUndefined();
    expect(problems({ STRIPE_ENABLED: 'true' })).toMatch(/STRIPE_SECRET_KEY: required when STRIPE_ENABLED=true/);
    expect(problems({ STRIPE_SECRET_KEY: 'pk_test_123' })).toMatch(/STRIPE_SECRET_KEY: must be a Stripe secret/);
  });

  test('when one of several tokens is weak, then the message says which', () => {
    expect(problems({ ...prod, ADMIN_API_TOKEN: `${strong},short` })).toMatch(/ADMIN_API_TOKEN \(token 2\): too short/);
  });

  test('when everything is right, then the config is parsed, typed and frozen', () => {
    const other = 'Zq7vX2pL9sK4mN8rT1wY6uB3cF5hJ0dG_-aE'; // 36 base64url characters from a generator
    const c = loadConfig({ ...prod, ADMIN_API_TOKEN: ` ${strong} , ${other} ` });
    expect(c.adminTokens).toEqual([strong, other]);
    expect(c.env).toBe('production');
    expect(c.logPretty).toBe(false);
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.adminTokens)).toBe(true);
  });
});

describe('settings are validated', () => {
  test('when the defaults apply, then they are the documented ones', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      env: 'development',
      port: 3000,
      dataDir: './.data',
      databaseUrl: undefined,
      adminTokens: [],
      logLevel: 'info',
      bcryptCost: 12,
      jsonBodyLimit: '100kb',
      migrateOnStart: true,
      trustProxy: false,
    });
  });

  test.each([
    [{ PORT: 'eighty' }, /PORT/],
    [{ PORT: '70000' }, /PORT/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL/],
    [{ DATABASE_URL: 'mysql://x' }, /DATABASE_URL: must be a postgres/],
    [{ BCRYPT_COST: '3' }, /BCRYPT_COST/],
    [{ JSON_BODY_LIMIT: 'huge' }, /JSON_BODY_LIMIT/],
    [{ MIGRATE_ON_START: 'maybe' }, /MIGRATE_ON_START/],
    [{ NODE_ENV: 'staging' }, /NODE_ENV/],
  ])('when %j, then the message names the setting', (env, name) => {
    expect(problems(env)).toMatch(name);
  });

  test('when a setting is present but empty, then it counts as unset', () => {
    expect(loadConfig({ PORT: '', DATABASE_URL: '  ', ADMIN_API_TOKEN: '' })).toMatchObject({ port: 3000, databaseUrl: undefined, adminTokens: [] });
  });

  test('when API_DOCS is unset, then the API description is public in development and test, admin in production', () => {
    expect(loadConfig({}).apiDocs).toBe('public');
    expect(loadConfig({ NODE_ENV: 'test' }).apiDocs).toBe('public');
    expect(loadConfig({ ...prod, ADMIN_API_TOKEN: strong }).apiDocs).toBe('admin');
    expect(loadConfig({ ...prod, ADMIN_API_TOKEN: strong, API_DOCS: 'off' }).apiDocs).toBe('off');
    expect(loadConfig({ ...prod, ADMIN_API_TOKEN: strong, API_DOCS: 'public' }).apiDocs).toBe('public');
    expect(problems({ API_DOCS: 'everyone' })).toMatch(/API_DOCS/);
  });

  test('when TRUST_PROXY is a hop count or subnets, then it is parsed for express', () => {
    expect(loadConfig({ TRUST_PROXY: '1' }).trustProxy).toBe(1);
    expect(loadConfig({ TRUST_PROXY: 'true' }).trustProxy).toBe(true); // allowed outside production, see below
    expect(loadConfig({ TRUST_PROXY: 'loopback, 10.0.0.0/8' }).trustProxy).toEqual(['loopback', '10.0.0.0/8']);
  });
});

describe('.env.example', () => {
  test('when the settings are listed, then every setting the service reads is there with a comment, and nothing else', () => {
    const text = fs.readFileSync(path.resolve(__dirname, '../../.env.example'), 'utf8');
    const lines = text.split('\n');
    const listed = lines.filter((l) => /^[A-Z_]+=/.test(l)).map((l) => l.split('=')[0]);
    expect([...listed].sort()).toEqual([...SETTING_NAMES, 'TEST_DATABASE_URL'].sort());
    for (const name of listed) {
      const i = lines.findIndex((l) => l.startsWith(`${name}=`));
      const above = lines
        .slice(0, i)
        .reverse()
        .find((l) => !/^[A-Z_]+=/.test(l));
      expect([name, above?.startsWith('#')]).toEqual([name, true]);
    }
  });

  test('when .env.example is loaded as it is, then it is a valid configuration', () => {
    const text = fs.readFileSync(path.resolve(__dirname, '../../.env.example'), 'utf8');
    const env = Object.fromEntries(
      text
        .split('\n')
        .filter((l) => /^[A-Z_]+=/.test(l))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    expect(() => loadConfig(env)).not.toThrow();
  });

  test("when a setting is documented, then the comment above it in .env.example is the schema's description of it", () => {
    const lines = fs.readFileSync(path.resolve(__dirname, '../../.env.example'), 'utf8').split('\n');
    const flat = (text: string) => text.replace(/\s+/g, ' ').trim();
    for (const name of SETTING_NAMES) {
      // The comment lines right above the setting, or above the settings listed together with it.
      let i = lines.findIndex((l) => l.startsWith(`${name}=`));
      while (i > 0 && /^[A-Z_]+=/.test(lines[i - 1]!)) i--;
      const comment: string[] = [];
      while (i > 0 && lines[i - 1]!.startsWith('#')) comment.unshift(lines[--i]!.replace(/^#\s?/, ''));
      expect([name, flat(comment.join(' '))]).toEqual([name, flat(SETTING_DESCRIPTIONS[name] ?? '')]);
      expect([name, SETTING_DESCRIPTIONS[name]]).not.toEqual([name, '']);
    }
  });
});

describe('secrets from files (<NAME>_FILE)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-secrets-'));
  const file = (name: string, text: string) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text, { mode: 0o600 });
    return p;
  };
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('when each secret comes from a file, then its contents are used, trailing newline trimmed, and the file remembered', () => {
    const files = {
      ADMIN_API_TOKEN_FILE: file('admin', `${strong}\n`),
      METRICS_TOKEN_FILE: file('metrics', `${'m'.repeat(8)}${strong.slice(8)}\r\n`),
      STRIPE_SECRET_KEY_FILE: file('stripe', 'sk_live_abc123\n'),
      STRIPE_WEBHOOK_SECRET_FILE: file('whsec', 'whsec_abc123\n'),
      DATABASE_URL_FILE: file('db', 'postgres://u:p@db:5432/billing\n'),
      LICENSE_SIGNING_KEYS_FILE: file('license', `${licenseKey}\n`),
      WEBHOOK_SECRETS_KEY_FILE: file('webhook-key', `${Buffer.alloc(32, 7).toString('base64')}\n`),
    };
    const jwks = { LICENSE_JWKS_URL: 'https://billing.example.com/.well-known/jwks.json' };
    const c = loadConfig({ NODE_ENV: 'production', ...files, ...jwks });
    expect(c.adminTokens).toEqual([strong]);
    expect(c.metricsToken).toBe(`${'m'.repeat(8)}${strong.slice(8)}`);
    expect(c.stripe.secretKey).toBe('sk_live_abc123');
    expect(c.stripe.webhookSecret).toBe('whsec_abc123');
    expect(c.databaseUrl).toBe('postgres://u:p@db:5432/billing');
    expect(c.secretFiles).toEqual({
      ADMIN_API_TOKEN: files.ADMIN_API_TOKEN_FILE,
      METRICS_TOKEN: files.METRICS_TOKEN_FILE,
      STRIPE_SECRET_KEY: files.STRIPE_SECRET_KEY_FILE,
      STRIPE_WEBHOOK_SECRET: files.STRIPE_WEBHOOK_SECRET_FILE,
      DATABASE_URL: files.DATABASE_URL_FILE,
      LICENSE_SIGNING_KEYS: files.LICENSE_SIGNING_KEYS_FILE,
      WEBHOOK_SECRETS_KEY: files.WEBHOOK_SECRETS_KEY_FILE,
    });
    expect(c.webhooks.secretsKeys).toEqual([Buffer.alloc(32, 7)]);
  });

  test.each(['ADMIN_API_TOKEN', 'METRICS_TOKEN', 'STRIPE_SECRET_KEY', 'STRIPE_WEBHOOK_SECRET', 'DATABASE_URL'])(
    'when %s and its _FILE form are both set, then the message names both and no value',
    (name) => {
      const message = problems({ [name]: 'plain-value-123', [`${name}_FILE`]: file(`both-${name}`, 'file-value-456') });
      expect(message).toContain(`${name} and ${name}_FILE are both set`);
      expect(message).not.toContain('plain-value-123');
      expect(message).not.toContain('file-value-456');
    },
  );

  test('when the file cannot be read or is empty, then a clear error names the setting', () => {
    expect(problems({ ADMIN_API_TOKEN_FILE: path.join(dir, 'missing') })).toMatch(/ADMIN_API_TOKEN_FILE: cannot read .*missing \(ENOENT\)/);
    expect(problems({ METRICS_TOKEN_FILE: dir })).toMatch(/METRICS_TOKEN_FILE: cannot read .* \(EISDIR\)/);
    expect(problems({ STRIPE_WEBHOOK_SECRET_FILE: file('empty', '\n') })).toMatch(/STRIPE_WEBHOOK_SECRET_FILE: .* is empty/);
  });

  test("when the file's contents break the plain setting's rules, then they are refused the same way, named after the file setting, never echoed", () => {
    const weak = problems({ ...prod, ADMIN_API_TOKEN_FILE: file('weak', 'hunter2hunter2\n') });
    expect(weak).toMatch(/ADMIN_API_TOKEN_FILE: too short/);
    expect(weak).not.toContain('hunter2');
    expect(problems({ ...prod, ADMIN_API_TOKEN_FILE: file('two', `${strong},short\n`) })).toMatch(/ADMIN_API_TOKEN_FILE \(token 2\): too short/);
    expect(problems({ METRICS_TOKEN_FILE: file('short-metrics', 'abc') })).toMatch(/METRICS_TOKEN_FILE: must be at least 32 characters/);
    expect(problems({ STRIPE_SECRET_KEY_FILE: file('pk', 'pk_test_123') })).toMatch(/STRIPE_SECRET_KEY_FILE: must be a Stripe secret/);
    expect(problems({ STRIPE_WEBHOOK_SECRET_FILE: file('wh', 'nope') })).toMatch(/STRIPE_WEBHOOK_SECRET_FILE: must be a Stripe webhook signing secret/);
    const db = problems({ DATABASE_URL_FILE: file('mysql', 'mysql://root:sekrit@db/x') });
    expect(db).toMatch(/DATABASE_URL_FILE: must be a postgres/);
    expect(db).not.toContain('sekrit');
  });

  test('when production reads its database URL and admin token from files, then nothing else is required of them', () => {
    const c = loadConfig({
      NODE_ENV: 'production',
      STRIPE_ENABLED: 'false',
      LICENSE_SIGNING_KEYS: licenseKey,
      LICENSE_JWKS_URL: 'https://billing.example.com/.well-known/jwks.json',
      WEBHOOK_SECRETS_KEY: 'abababababababababababababababababababababababababababababababab',
      DATABASE_URL_FILE: file('db2', 'postgres://u:p@db/b'),
      ADMIN_API_TOKEN_FILE: file('a2', strong),
    });
    expect(c.databaseUrl).toBe('postgres://u:p@db/b');
  });
});

describe('every problem at once, in one error', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-config-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const refused = (env: Record<string, string>): string[] => {
    try {
      loadConfig(env);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as ConfigError).problems;
    }
    throw new Error('expected the configuration to be refused');
  };

  test('when settings are malformed and production rules are broken too, then each problem is reported, each naming its setting', () => {
    const list = refused({ NODE_ENV: 'production', PORT: 'eighty', LOG_LEVEL: 'loud', RATE_LIMIT_API: 'lots', TRUST_PROXY: 'true', ADMIN_API_TOKEN: 'short' });
    expect(list).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^PORT: /),
        expect.stringMatching(/^LOG_LEVEL: /),
        expect.stringMatching(/^RATE_LIMIT_API: must look like <max>\/<window>/),
        'DATABASE_URL: required when NODE_ENV=production',
        expect.stringMatching(/^TRUST_PROXY: "true" trusts any X-Forwarded-For/),
        expect.stringMatching(/^ADMIN_API_TOKEN: too short/),
        expect.stringMatching(/^STRIPE_SECRET_KEY: required when NODE_ENV=production/),
        'LICENSE_SIGNING_KEYS: required when NODE_ENV=production (make one: npm run license-key)',
        expect.stringMatching(/^LICENSE_JWKS_URL: required when NODE_ENV=production/),
        'WEBHOOK_SECRETS_KEY: required when NODE_ENV=production (make one: openssl rand -base64 32)',
      ]),
    );
    expect(list).toHaveLength(10);
  });

  test('when a secret file is missing and another setting is wrong, then both are reported, and no rule judges the missing secret', () => {
    const list = refused({
      NODE_ENV: 'production',
      STRIPE_ENABLED: 'false',
      DATABASE_URL: 'postgres://u:p@db/b',
      LICENSE_SIGNING_KEYS: licenseKey,
      LICENSE_JWKS_URL: 'https://billing.example.com/.well-known/jwks.json',
      WEBHOOK_SECRETS_KEY: 'abababababababababababababababababababababababababababababababab',
      ADMIN_API_TOKEN_FILE: path.join(dir, 'missing'),
      BCRYPT_COST: '99',
    });
    expect(list).toEqual(
      expect.arrayContaining([expect.stringMatching(/^BCRYPT_COST: /), expect.stringMatching(/^ADMIN_API_TOKEN_FILE: cannot read .*missing \(ENOENT\)$/)]),
    );
    expect(list).toHaveLength(2);
  });

  test('when a secret is set both ways and its file breaks its rules, then both problems are reported', () => {
    const file = path.join(dir, 'metrics');
    fs.writeFileSync(file, 'too-short\n');
    const list = refused({ METRICS_TOKEN: strong, METRICS_TOKEN_FILE: file });
    expect(list).toEqual(
      expect.arrayContaining(['METRICS_TOKEN and METRICS_TOKEN_FILE are both set: set only one of them', 'METRICS_TOKEN_FILE: must be at least 32 characters']),
    );
    expect(list.join('\n')).not.toContain(strong);
  });

  test('when USAGE_METER_EVENTS names a metric not in USAGE_METRICS, then the pair is named, not its text', () => {
    expect(refused({ USAGE_METRICS: 'api_calls,seats', USAGE_METER_EVENTS: 'seats:seat_hours, sk_live_abc123:x' })).toEqual([
      'USAGE_METER_EVENTS (pair 2): names a metric that is not in USAGE_METRICS',
    ]);
    const c = loadConfig({ USAGE_METRICS: 'api_calls, seats,api_calls', USAGE_METER_EVENTS: 'seats:seat_hours' });
    expect(c.usage.metrics).toEqual(['api_calls', 'seats']);
    expect(c.usage.meterEvents).toEqual({ api_calls: 'api_calls', seats: 'seat_hours' });
    expect(Object.isFrozen(c.usage.meterEvents)).toBe(true);
  });

  // Looks like a live Stripe key and would pass several settings' shape checks in part.
  const secretLike = 'sk_live_51HxYzQ8v2LmN4pR7tU9wE3aB6cD0fGh';
  const fragment = secretLike.slice(8, 24);
  const prodBase = { NODE_ENV: 'production', DATABASE_URL: 'postgres://u:p@db:5432/billing', ADMIN_API_TOKEN: strong, STRIPE_ENABLED: 'false' };

  test.each(SETTING_NAMES.filter((n) => !n.endsWith('_FILE')))('when a secret-looking value is put in %s, then no message shows any of it', (name) => {
    for (const env of [
      { [name]: secretLike },
      { ...prodBase, [name]: secretLike },
      { ...prodBase, [name]: `${secretLike}:x` },
      { ...prodBase, [name]: `${secretLike.toLowerCase()}:x` },
    ]) {
      let message = '';
      try {
        loadConfig(env);
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).not.toContain(fragment);
      expect(message.toLowerCase()).not.toContain(fragment.toLowerCase());
    }
  });

  test('when a secret-looking value is in every setting and every secret file at once, then the problems name settings and show no value', () => {
    const file = path.join(dir, 'secret-like');
    fs.writeFileSync(file, `${secretLike}\n`);
    const env = Object.fromEntries(SETTING_NAMES.map((n) => [n, n.endsWith('_FILE') ? file : secretLike]));
    const list = refused(env);
    expect(list.length).toBeGreaterThan(30);
    for (const p of list) expect(p).toMatch(/^[A-Z_]+( \(.+\))?: |^[A-Z_]+ and [A-Z_]+_FILE are both set/);
    expect(list.join('\n')).not.toContain(fragment);
  });
});
