import fs from 'node:fs';
import { z } from 'zod';
import { checkTokenStrength } from './lib/token-strength';
import { parseLimit } from './lib/limit-format';
import { parseDuration } from './lib/duration';
import { parseSigningKeys, type PrivateSigningJwk } from './modules/licenses/signing-keys';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const postgresUrl = z
  .string()
  .regex(/^postgres(ql)?:\/\/\S+$/, 'must be a postgres:// or postgresql:// URL');

// express `trust proxy`: false, true, a hop count, or a comma-separated list of addresses/subnets.
const trustProxy = z
  .string()
  .regex(/^[\w.:/, -]+$/, 'must be false, true, a hop count, or addresses/subnets')
  .transform((v): boolean | number | string[] => {
    if (v === 'false' || v === '0') return false;
    if (v === 'true') return true;
    if (/^\d+$/.test(v)) return Number(v);
    return v.split(',').map((s) => s.trim()).filter(Boolean);
  });

const limit = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((v, ctx) => {
      const parsed = parseLimit(v);
      if (!parsed) {
        ctx.addIssue({ code: 'custom', message: 'must look like <max>/<window>, e.g. 100/15m, 60/1h, 5/30s' });
        return z.NEVER;
      }
      return parsed;
    });

const duration = (fallback: string, maxDays: number) =>
  z
    .string()
    .default(fallback)
    .transform((v, ctx) => {
      const seconds = parseDuration(v);
      if (seconds === null || seconds > maxDays * 86_400) {
        ctx.addIssue({ code: 'custom', message: `must look like 7d, 12h or 30m (at most ${maxDays}d)` });
        return z.NEVER;
      }
      return seconds;
    });

const signingKeys = z.string().transform((v, ctx): PrivateSigningJwk[] => {
  try {
    return parseSigningKeys(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

const schema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  HOST: z.string().min(1).default('0.0.0.0'),
  PORT: int(0, 65535).default(3000),
  DATABASE_URL: postgresUrl.optional(),
  DATA_DIR: z.string().min(1).default('./.data'),
  EMBEDDED_PG_PORT: int(0, 65535).default(0),
  DB_POOL_MAX: int(1, 200).default(10),
  MIGRATE_ON_START: bool.default(true),
  ADMIN_API_TOKEN: z
    .string()
    .optional()
    .transform((v) => (v ?? '').split(',').map((t) => t.trim()).filter(Boolean)),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_PRETTY: bool.optional(),
  BCRYPT_COST: int(4, 15).default(12),
  AUTH_MAX_CONCURRENT_VERIFICATIONS: int(1, 64).default(4),
  JSON_BODY_LIMIT: z
    .string()
    .regex(/^\d+(b|kb|mb)$/i, 'must look like 100kb, 1mb or 2048b')
    .default('100kb'),
  API_KEY_CACHE_TTL_SECONDS: int(0, 3600).default(60),
  API_KEY_CACHE_MAX_ENTRIES: int(0, 1_000_000).default(10_000),
  MAX_ACTIVE_KEYS_PER_CUSTOMER: int(1, 50).default(5),
  LAST_USED_FLUSH_SECONDS: int(1, 3600).default(30),
  TRUST_PROXY: trustProxy.default(false),
  SHUTDOWN_TIMEOUT_SECONDS: int(1, 300).default(10),

  USAGE_METRICS: z
    .string()
    .regex(/^[a-z][a-z0-9_]{0,62}(\s*,\s*[a-z][a-z0-9_]{0,62})*$/, 'comma-separated metric names: lowercase letters, digits, _')
    .default('api_calls'),
  USAGE_METER_EVENTS: z
    .string()
    .regex(/^([a-z][a-z0-9_]*:[A-Za-z0-9_.-]{1,100})(\s*,\s*[a-z][a-z0-9_]*:[A-Za-z0-9_.-]{1,100})*$/, 'comma-separated metric:event_name pairs')
    .optional(),
  USAGE_MAX_BATCH: int(1, 10_000).default(1000),
  USAGE_BODY_LIMIT: z.string().regex(/^\d+(b|kb|mb)$/i, 'must look like 1mb or 512kb').default('1mb'),

  STRIPE_SECRET_KEY: z.string().regex(/^(sk|rk)_(test|live)_[A-Za-z0-9]+$/, 'must be a Stripe secret or restricted key (sk_… or rk_…)').optional(),
  STRIPE_API_BASE: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
  STRIPE_TIMEOUT_MS: int(100, 120_000).default(10_000),
  STRIPE_ENABLED: bool.optional(),
  STRIPE_WEBHOOK_SECRET: z.string().regex(/^whsec_[A-Za-z0-9+/=_-]+$/, 'must be a Stripe webhook signing secret (whsec_…)').optional(),
  STRIPE_WEBHOOK_TOLERANCE_SECONDS: int(1, 3600).default(300),
  WEBHOOK_BODY_LIMIT: z.string().regex(/^\d+(b|kb|mb)$/i, 'must look like 1mb or 512kb').default('1mb'),

  FORWARDER_ENABLED: bool.default(true),
  FORWARDER_INTERVAL_MS: int(10, 3_600_000).default(1000),
  FORWARDER_BATCH_SIZE: int(1, 1000).default(100),
  FORWARDER_CONCURRENCY: int(1, 64).default(8),
  FORWARDER_MAX_ATTEMPTS: int(1, 100).default(10),
  FORWARDER_BACKOFF_BASE_MS: int(1, 3_600_000).default(2000),
  FORWARDER_BACKOFF_MAX_MS: int(1, 86_400_000).default(3_600_000),
  FORWARDER_LEASE_SECONDS: int(5, 3600).default(300),

  RATE_LIMIT_API: limit('100/15m'),
  RATE_LIMIT_USAGE: limit('60/1h'),
  RATE_LIMIT_USAGE_ADDRESS: limit('600/1m'),
  RATE_LIMIT_WEBHOOKS: limit('100/1m'),
  RATE_LIMIT_ADMIN: limit('10/1h'),
  RATE_LIMIT_AUTH_FAILURES: limit('20/15m'),
  REDIS_URL: z.string().regex(/^rediss?:\/\/\S+$/, 'must be a redis:// or rediss:// URL').optional(),
  METRICS_TOKEN: z.string().min(32, 'must be at least 32 characters').optional(),
  API_DOCS: z.enum(['public', 'admin', 'off']).optional(),

  LICENSE_SIGNING_KEYS: signingKeys.optional(),
  LICENSE_ISSUER: z.string().regex(/^[\x21-\x7e]{1,200}$/, 'must be 1-200 printable ASCII characters without spaces').default('billing-service'),
  LICENSE_TTL: duration('7d', 365),
  LICENSE_GRACE_DAYS: int(0, 365).default(14),
  LICENSE_HEARTBEAT_DAYS: int(1, 365).default(14),
  LICENSE_DEFAULT_PLAN: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'must be a plan code').optional(),
  LICENSE_JWKS_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
});

type Parsed = z.infer<typeof schema>;

/**
 * Secrets that may instead be read from a file, as secret managers and Kubernetes mount them:
 * `<NAME>_FILE` holds the path. The file's contents obey the rules of the plain setting.
 */
export const FILE_SECRETS = ['ADMIN_API_TOKEN', 'METRICS_TOKEN', 'STRIPE_SECRET_KEY', 'STRIPE_WEBHOOK_SECRET', 'DATABASE_URL', 'LICENSE_SIGNING_KEYS'] as const;
export type FileSecret = (typeof FILE_SECRETS)[number];

/** Every setting the service reads; .env.example must list each (a test checks). */
export const SETTING_NAMES = [...Object.keys(schema.shape), ...FILE_SECRETS.map((n) => `${n}_FILE`)];

export interface Config {
  readonly env: Parsed['NODE_ENV'];
  readonly host: string;
  readonly port: number;
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  readonly embeddedPgPort: number;
  readonly dbPoolMax: number;
  readonly migrateOnStart: boolean;
  /** Every accepted admin token; several at once so one can be rotated without downtime. */
  readonly adminTokens: readonly string[];
  readonly logLevel: Parsed['LOG_LEVEL'];
  readonly logPretty: boolean;
  readonly bcryptCost: number;
  /** Key verifications that need bcrypt, at once per instance; above it a fast 503. */
  readonly authMaxConcurrentVerifications: number;
  readonly jsonBodyLimit: string;
  readonly apiKeyCacheTtlSeconds: number;
  readonly apiKeyCacheMaxEntries: number;
  readonly maxActiveKeysPerCustomer: number;
  readonly lastUsedFlushSeconds: number;
  readonly trustProxy: boolean | number | string[];
  readonly shutdownTimeoutSeconds: number;
  readonly usage: {
    readonly metrics: readonly string[];
    /** Stripe meter event_name for each metric (default: the metric's own name). */
    readonly meterEvents: Readonly<Record<string, string>>;
    readonly maxBatch: number;
    readonly bodyLimit: string;
  };
  readonly stripe: {
    /** Unset (or STRIPE_ENABLED=false): Stripe is off; everything works locally and nothing is sent. */
    readonly secretKey: string | undefined;
    readonly webhookSecret: string | undefined;
    readonly webhookToleranceSeconds: number;
    /** Largest webhook body: Stripe's events (a subscription with many items and its previous attributes) outgrow JSON_BODY_LIMIT. */
    readonly webhookBodyLimit: string;
    readonly apiBase: string | undefined;
    readonly timeoutMs: number;
  };
  readonly rateLimits: Readonly<Record<'api' | 'usage' | 'usageAddress' | 'webhooks' | 'admin' | 'authFailures', { max: number; windowMs: number }>>;
  /** Unset: rate limits are counted in each instance's memory. */
  readonly redisUrl: string | undefined;
  /** A token that reads /metrics only, and that the admin limiter does not count. */
  readonly metricsToken: string | undefined;
  /** /openapi.json and /docs: without credentials, with an admin token, or not served at all. */
  readonly apiDocs: 'public' | 'admin' | 'off';
  /** The file each secret was read from (<NAME>_FILE), so it can be read again on SIGHUP. */
  readonly secretFiles: Readonly<Partial<Record<FileSecret, string>>>;
  readonly forwarder: {
    readonly enabled: boolean;
    readonly intervalMs: number;
    readonly batchSize: number;
    readonly concurrency: number;
    readonly maxAttempts: number;
    readonly backoffBaseMs: number;
    readonly backoffMaxMs: number;
    readonly leaseSeconds: number;
  };
  readonly license: {
    /** Ed25519 private keys: the first signs, all are published. Empty: none set (a development key is used). */
    readonly signingKeys: readonly PrivateSigningJwk[];
    readonly issuer: string;
    readonly ttlSeconds: number;
    /** How long past_due/unpaid keeps a license in grace, from when payment started failing. */
    readonly graceDays: number;
    /** An activation unseen this long is released and its seat freed. */
    readonly heartbeatDays: number;
    /** A plan whose license customers without a subscription get (a free tier); unset: 404. */
    readonly defaultPlan: string | undefined;
    /** Where instances fetch the public keys; unset: /.well-known/jwks.json on the address the request came to. */
    readonly jwksUrl: string | undefined;
  };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Empty values (`KEY=` copied from .env.example) mean "not set". */
function withoutEmpty(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v.trim() !== '') out[k] = v.trim();
  return out;
}

function stripeProblems(c: Parsed): string[] {
  const problems: string[] = [];
  if (c.STRIPE_ENABLED === true && !c.STRIPE_SECRET_KEY) problems.push('STRIPE_SECRET_KEY: required when STRIPE_ENABLED=true');
  if (c.NODE_ENV !== 'production' || c.STRIPE_ENABLED === false) return problems;
  if (!c.STRIPE_SECRET_KEY) {
    problems.push('STRIPE_SECRET_KEY: required when NODE_ENV=production (or turn Stripe off explicitly: STRIPE_ENABLED=false)');
  } else if (!c.STRIPE_WEBHOOK_SECRET) {
    problems.push('STRIPE_WEBHOOK_SECRET: required when Stripe is on in production (the signing secret of the webhook endpoint)');
  }
  return problems;
}

function productionProblems(c: Parsed): string[] {
  if (c.NODE_ENV !== 'production') return [];
  const problems: string[] = [];
  if (!c.DATABASE_URL) problems.push('DATABASE_URL: required when NODE_ENV=production');
  if (c.TRUST_PROXY === true) {
    // Every client could then name its own address in X-Forwarded-For, and every per-address
    // limit (and the address in audit rows) would be the client's to choose.
    problems.push('TRUST_PROXY: "true" trusts any X-Forwarded-For a client sends; set the hop count of your proxies (e.g. 1) or their addresses/subnets (e.g. loopback, 10.0.0.0/8)');
  }
  if (c.ADMIN_API_TOKEN.length === 0) {
    problems.push('ADMIN_API_TOKEN: required when NODE_ENV=production (generate one: openssl rand -hex 32)');
  }
  if (!c.LICENSE_SIGNING_KEYS) {
    problems.push('LICENSE_SIGNING_KEYS: required when NODE_ENV=production (make one: npm run license-key)');
  }
  c.ADMIN_API_TOKEN.forEach((token, i) => {
    const weakness = checkTokenStrength(token);
    if (weakness) {
      const which = c.ADMIN_API_TOKEN.length > 1 ? ` (token ${i + 1})` : '';
      problems.push(`ADMIN_API_TOKEN${which}: ${weakness} (generate one: openssl rand -hex 32)`);
    }
  });
  return problems;
}

/**
 * Puts the contents of each <NAME>_FILE under <NAME>. A setting and its _FILE form are exclusive;
 * a file that cannot be read, or is empty, is a problem named after the setting (never its value).
 */
function readSecretFiles(env: Record<string, string>) {
  const out = { ...env };
  const files: Partial<Record<FileSecret, string>> = {};
  const problems: string[] = [];
  for (const name of FILE_SECRETS) {
    const file = env[`${name}_FILE`];
    if (file === undefined) continue;
    if (env[name] !== undefined) {
      problems.push(`${name} and ${name}_FILE are both set: set only one of them`);
      continue;
    }
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      problems.push(`${name}_FILE: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      continue;
    }
    // Editors and `echo` end files with a newline: trimmed, as the plain setting's value is.
    const value = text.trim();
    if (value === '') {
      problems.push(`${name}_FILE: ${file} is empty`);
      continue;
    }
    out[name] = value;
    files[name] = file;
  }
  return { env: out, files, problems };
}

/** A problem about a secret read from a file names the _FILE setting, which is what the operator set. */
function nameFileSecrets(problems: string[], files: Partial<Record<FileSecret, string>>): string[] {
  return problems.map((p) => {
    const name = /^[A-Z_]+/.exec(p)?.[0] as FileSecret | undefined;
    return name && files[name] ? `${name}_FILE${p.slice(name.length)}` : p;
  });
}

/**
 * Parses and validates the environment (and the secret files it names) once. Never echoes a
 * value: settings may be secrets.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const secrets = readSecretFiles(withoutEmpty(env));
  if (secrets.problems.length > 0) throw new ConfigError(secrets.problems);
  const result = schema.safeParse(secrets.env);
  if (!result.success) {
    throw new ConfigError(nameFileSecrets(result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`), secrets.files));
  }
  const c = result.data;
  const metrics = [...new Set(c.USAGE_METRICS.split(',').map((m) => m.trim()))];
  const meterEvents: Record<string, string> = Object.fromEntries(metrics.map((m) => [m, m]));
  const problems = [...productionProblems(c), ...stripeProblems(c)];
  for (const pair of (c.USAGE_METER_EVENTS ?? '').split(',').filter((p) => p.trim())) {
    const [metric, eventName] = pair.split(':').map((s) => s.trim()) as [string, string];
    if (!metrics.includes(metric)) problems.push(`USAGE_METER_EVENTS: "${metric}" is not in USAGE_METRICS`);
    meterEvents[metric] = eventName;
  }
  if (problems.length > 0) throw new ConfigError(nameFileSecrets(problems, secrets.files));
  return Object.freeze({
    env: c.NODE_ENV,
    host: c.HOST,
    port: c.PORT,
    databaseUrl: c.DATABASE_URL,
    dataDir: c.DATA_DIR,
    embeddedPgPort: c.EMBEDDED_PG_PORT,
    dbPoolMax: c.DB_POOL_MAX,
    migrateOnStart: c.MIGRATE_ON_START,
    adminTokens: Object.freeze([...c.ADMIN_API_TOKEN]),
    logLevel: c.LOG_LEVEL,
    logPretty: c.LOG_PRETTY ?? c.NODE_ENV === 'development',
    bcryptCost: c.BCRYPT_COST,
    authMaxConcurrentVerifications: c.AUTH_MAX_CONCURRENT_VERIFICATIONS,
    jsonBodyLimit: c.JSON_BODY_LIMIT.toLowerCase(),
    apiKeyCacheTtlSeconds: c.API_KEY_CACHE_TTL_SECONDS,
    apiKeyCacheMaxEntries: c.API_KEY_CACHE_MAX_ENTRIES,
    maxActiveKeysPerCustomer: c.MAX_ACTIVE_KEYS_PER_CUSTOMER,
    lastUsedFlushSeconds: c.LAST_USED_FLUSH_SECONDS,
    trustProxy: c.TRUST_PROXY,
    shutdownTimeoutSeconds: c.SHUTDOWN_TIMEOUT_SECONDS,
    usage: Object.freeze({
      metrics: Object.freeze(metrics),
      meterEvents: Object.freeze(meterEvents),
      maxBatch: c.USAGE_MAX_BATCH,
      bodyLimit: c.USAGE_BODY_LIMIT.toLowerCase(),
    }),
    stripe: Object.freeze({
      secretKey: c.STRIPE_ENABLED === false ? undefined : c.STRIPE_SECRET_KEY,
      webhookSecret: c.STRIPE_WEBHOOK_SECRET,
      webhookToleranceSeconds: c.STRIPE_WEBHOOK_TOLERANCE_SECONDS,
      webhookBodyLimit: c.WEBHOOK_BODY_LIMIT.toLowerCase(),
      apiBase: c.STRIPE_API_BASE,
      timeoutMs: c.STRIPE_TIMEOUT_MS,
    }),
    rateLimits: Object.freeze({
      api: c.RATE_LIMIT_API,
      usage: c.RATE_LIMIT_USAGE,
      usageAddress: c.RATE_LIMIT_USAGE_ADDRESS,
      webhooks: c.RATE_LIMIT_WEBHOOKS,
      admin: c.RATE_LIMIT_ADMIN,
      authFailures: c.RATE_LIMIT_AUTH_FAILURES,
    }),
    redisUrl: c.REDIS_URL,
    metricsToken: c.METRICS_TOKEN,
    apiDocs: c.API_DOCS ?? (c.NODE_ENV === 'production' ? 'admin' : 'public'),
    secretFiles: Object.freeze(secrets.files),
    forwarder: Object.freeze({
      enabled: c.FORWARDER_ENABLED,
      intervalMs: c.FORWARDER_INTERVAL_MS,
      batchSize: c.FORWARDER_BATCH_SIZE,
      concurrency: c.FORWARDER_CONCURRENCY,
      maxAttempts: c.FORWARDER_MAX_ATTEMPTS,
      backoffBaseMs: c.FORWARDER_BACKOFF_BASE_MS,
      backoffMaxMs: c.FORWARDER_BACKOFF_MAX_MS,
      leaseSeconds: c.FORWARDER_LEASE_SECONDS,
    }),
    license: Object.freeze({
      signingKeys: Object.freeze([...(c.LICENSE_SIGNING_KEYS ?? [])]),
      issuer: c.LICENSE_ISSUER,
      ttlSeconds: c.LICENSE_TTL,
      graceDays: c.LICENSE_GRACE_DAYS,
      heartbeatDays: c.LICENSE_HEARTBEAT_DAYS,
      defaultPlan: c.LICENSE_DEFAULT_PLAN,
      jwksUrl: c.LICENSE_JWKS_URL,
    }),
  });
}
