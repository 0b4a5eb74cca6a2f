import { z } from 'zod';
import type { PrivateSigningJwk } from './modules/licenses/signing-keys';
import { keysMissingFrom } from './modules/licenses/key-set';
import { FILE_SECRETS, settings, type FileSecret, type Settings } from './config-settings';
import { secretFileProblem } from './lib/secret-file';
import { checkTokenStrength } from './lib/token-strength';
import { trustProxyProblem } from './security/trust-proxy';

export { FILE_SECRETS, type FileSecret } from './config-settings';

/** Every setting the service reads; .env.example must list each (a test checks). */
export const SETTING_NAMES = Object.keys(settings.shape) as (keyof Settings)[];

/** Each setting's description: the comment above it in .env.example (a test holds them equal). */
export const SETTING_DESCRIPTIONS: Readonly<Record<string, string>> = Object.fromEntries(
  Object.entries(settings.shape).map(([name, schema]) => [name, schema.description ?? '']),
);

/** Empty values (`KEY=` copied from .env.example) mean "not set". */
function withoutEmpty(env: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env as NodeJS.ProcessEnv)) if (v !== undefined && v.trim() !== '') out[k] = v.trim();
  return out;
}

/** A secret's value, from its file when <NAME>_FILE is set. */
function secret<N extends FileSecret>(s: Settings, name: N): Settings[N] {
  const fromFile = s[`${name}_FILE`] as { value: Settings[N] } | undefined;
  return fromFile ? fromFile.value : s[name];
}

/** What the operator set for a secret: a problem with its value names that setting. */
const setBy = (s: Settings, name: FileSecret) => (s[`${name}_FILE`] ? `${name}_FILE` : name);

const bothSet = (value: unknown, name: FileSecret) => {
  const v = value as Record<string, unknown>;
  return v[name] !== undefined && v[`${name}_FILE`] !== undefined;
};

/**
 * An issue names its setting (and which part of it) in its path and never carries a value: settings
 * may be secrets. Path [] is a problem worded on its own.
 */
function report(ctx: z.core.$RefinementCtx, path: string[], message: string): void {
  ctx.addIssue({ code: 'custom', path, message, input: undefined });
}

/**
 * A rule between settings. It runs even when other settings are invalid, so every problem is
 * reported at once, but only when the settings it reads parsed (and no secret among them is set twice).
 */
function rule(reads: readonly (keyof Settings)[], check: (s: Settings, ctx: z.core.$RefinementCtx<Settings>) => void) {
  const names = new Set<string>(reads.flatMap((n) => [n, `${n}_FILE`]));
  return z.superRefine(check, {
    when: (payload) => !payload.issues.some((i) => names.has(String(i.path?.[0]))) && !FILE_SECRETS.some((n) => names.has(n) && bothSet(payload.value, n)),
  });
}

const rules = [
  z.superRefine<Settings>(
    (s, ctx) => {
      for (const name of FILE_SECRETS) {
        if (bothSet(s, name)) report(ctx, [], `${name} and ${name}_FILE are both set: set only one of them`);
      }
    },
    { when: () => true },
  ),
  z.superRefine<Settings>(
    (s, ctx) => {
      // A secret file others can read is a secret shared with them: production refuses it.
      if (s.NODE_ENV !== 'production') return;
      for (const name of FILE_SECRETS) {
        const f = s[`${name}_FILE`] as { file: string; mode: number } | undefined;
        const problem = f ? secretFileProblem(f.file, f.mode) : null;
        if (problem) report(ctx, [`${name}_FILE`], problem);
      }
    },
    { when: (payload) => !payload.issues.some((i) => i.path?.[0] === 'NODE_ENV') },
  ),
  rule(['NODE_ENV', 'DATABASE_URL'], (s, ctx) => {
    if (s.NODE_ENV === 'production' && !secret(s, 'DATABASE_URL')) report(ctx, ['DATABASE_URL'], 'required when NODE_ENV=production');
  }),
  rule(['NODE_ENV', 'TRUST_PROXY'], (s, ctx) => {
    // A trusted peer names the client address in X-Forwarded-For: every per-address limit (and the
    // address in audit rows) would be the client's to choose if anyone on the internet were trusted.
    const problem = trustProxyProblem(s.TRUST_PROXY, s.NODE_ENV === 'production');
    if (problem) report(ctx, ['TRUST_PROXY'], problem);
  }),
  rule(['NODE_ENV', 'ADMIN_API_TOKEN'], (s, ctx) => {
    if (s.NODE_ENV !== 'production') return;
    const tokens = secret(s, 'ADMIN_API_TOKEN') ?? [];
    const name = setBy(s, 'ADMIN_API_TOKEN');
    if (tokens.length === 0) report(ctx, [name], 'required when NODE_ENV=production (generate one: openssl rand -hex 32)');
    tokens.forEach((token, i) => {
      const weakness = checkTokenStrength(token);
      if (weakness) report(ctx, tokens.length > 1 ? [name, `token ${i + 1}`] : [name], `${weakness} (generate one: openssl rand -hex 32)`);
    });
  }),
  rule(['NODE_ENV', 'STRIPE_ENABLED', 'STRIPE_SECRET_KEY', 'STRIPE_WEBHOOK_SECRET'], (s, ctx) => {
    const key = secret(s, 'STRIPE_SECRET_KEY');
    if (s.STRIPE_ENABLED === true && !key) report(ctx, ['STRIPE_SECRET_KEY'], 'required when STRIPE_ENABLED=true');
    if (s.NODE_ENV !== 'production' || s.STRIPE_ENABLED === false) return;
    if (!key) {
      report(ctx, ['STRIPE_SECRET_KEY'], 'required when NODE_ENV=production (or turn Stripe off explicitly: STRIPE_ENABLED=false)');
    } else if (!secret(s, 'STRIPE_WEBHOOK_SECRET')) {
      report(ctx, ['STRIPE_WEBHOOK_SECRET'], 'required when Stripe is on in production (the signing secret of the webhook endpoint)');
    }
  }),
  rule(['NODE_ENV', 'LICENSE_SIGNING_KEYS'], (s, ctx) => {
    if (s.NODE_ENV === 'production' && !secret(s, 'LICENSE_SIGNING_KEYS')?.length) {
      report(ctx, [setBy(s, 'LICENSE_SIGNING_KEYS')], 'required when NODE_ENV=production (make one: npm run license-key)');
    }
  }),
  rule(['NODE_ENV', 'LICENSE_JWKS_URL'], (s, ctx) => {
    if (s.NODE_ENV === 'production' && !s.LICENSE_JWKS_URL) {
      report(
        ctx,
        ['LICENSE_JWKS_URL'],
        'required when NODE_ENV=production (https://<your billing host>/.well-known/jwks.json); it is never built from a request',
      );
    }
  }),
  rule(['LICENSE_KEY_SET', 'LICENSE_SIGNING_KEYS'], (s, ctx) => {
    const set = s.LICENSE_KEY_SET;
    const signing = secret(s, 'LICENSE_SIGNING_KEYS') ?? [];
    if (!set || signing.length === 0) return;
    // The first key signs: a set without it would have every instance relying on the set refuse every new license.
    if (keysMissingFrom(set, signing.slice(0, 1)).length) {
      report(
        ctx,
        ['LICENSE_KEY_SET'],
        `does not list the signing key "${signing[0]!.kid}" (the first of ${setBy(s, 'LICENSE_SIGNING_KEYS')}): sign a new key set with it (npm run license-key -- sign-key-set)`,
      );
    }
  }),
  rule(['NODE_ENV', 'WEBHOOK_SECRETS_KEY'], (s, ctx) => {
    if (s.NODE_ENV === 'production' && !secret(s, 'WEBHOOK_SECRETS_KEY')?.length) {
      report(ctx, [setBy(s, 'WEBHOOK_SECRETS_KEY')], 'required when NODE_ENV=production (make one: openssl rand -base64 32)');
    }
  }),
  rule(['NODE_ENV', 'WEBHOOK_ALLOW_PRIVATE'], (s, ctx) => {
    // A webhook URL is chosen by whoever holds an admin token: in production it must never reach the private network.
    if (s.NODE_ENV === 'production' && s.WEBHOOK_ALLOW_PRIVATE) {
      report(ctx, ['WEBHOOK_ALLOW_PRIVATE'], 'must not be true when NODE_ENV=production (webhook endpoints must be public addresses)');
    }
  }),
  rule(['USAGE_METRICS', 'USAGE_METER_EVENTS'], (s, ctx) => {
    (s.USAGE_METER_EVENTS ?? []).forEach(([metric], i) => {
      if (!s.USAGE_METRICS.includes(metric)) report(ctx, ['USAGE_METER_EVENTS', `pair ${i + 1}`], 'names a metric that is not in USAGE_METRICS');
    });
  }),
];

/** The shape the service uses, frozen. Runs only when every setting and every rule passed. */
function toConfig(s: Settings) {
  const secretFiles: Partial<Record<FileSecret, string>> = {};
  for (const name of FILE_SECRETS) {
    const fromFile = s[`${name}_FILE`];
    if (fromFile) secretFiles[name] = fromFile.file;
  }
  const metrics = s.USAGE_METRICS;
  return Object.freeze({
    env: s.NODE_ENV,
    host: s.HOST,
    port: s.PORT,
    databaseUrl: secret(s, 'DATABASE_URL'),
    dataDir: s.DATA_DIR,
    embeddedPgPort: s.EMBEDDED_PG_PORT,
    dbPoolMax: s.DB_POOL_MAX,
    migrateOnStart: s.MIGRATE_ON_START,
    /** Every accepted admin token; several at once so one can be rotated without downtime. */
    adminTokens: Object.freeze<string[]>([...(secret(s, 'ADMIN_API_TOKEN') ?? [])]),
    logLevel: s.LOG_LEVEL,
    logPretty: s.LOG_PRETTY ?? s.NODE_ENV === 'development',
    bcryptCost: s.BCRYPT_COST,
    /** Key verifications that need bcrypt, at once per instance; above it a fast 503. */
    authMaxConcurrentVerifications: s.AUTH_MAX_CONCURRENT_VERIFICATIONS,
    jsonBodyLimit: s.JSON_BODY_LIMIT,
    apiKeyCacheTtlSeconds: s.API_KEY_CACHE_TTL_SECONDS,
    apiKeyCacheMaxEntries: s.API_KEY_CACHE_MAX_ENTRIES,
    maxActiveKeysPerCustomer: s.MAX_ACTIVE_KEYS_PER_CUSTOMER,
    lastUsedFlushSeconds: s.LAST_USED_FLUSH_SECONDS,
    trustProxy: s.TRUST_PROXY,
    shutdownTimeoutSeconds: s.SHUTDOWN_TIMEOUT_SECONDS,
    usage: Object.freeze({
      metrics: Object.freeze<string[]>([...metrics]),
      /** Stripe meter event_name for each metric (default: the metric's own name). */
      meterEvents: Object.freeze(Object.fromEntries([...metrics.map((m) => [m, m]), ...(s.USAGE_METER_EVENTS ?? [])])) as Readonly<Record<string, string>>,
      maxBatch: s.USAGE_MAX_BATCH,
      bodyLimit: s.USAGE_BODY_LIMIT,
      /** A usage bundle's largest body (the JSON with the bundle's text), and its most events. */
      bundleMaxBytes: s.USAGE_BUNDLE_MAX_BYTES,
      bundleMaxEvents: s.USAGE_BUNDLE_MAX_EVENTS,
      /** Months ahead of the current one that always have a usage_events partition. */
      partitionsAhead: s.USAGE_PARTITIONS_AHEAD,
      /** Settled months packed into usage_event_packs (src/modules/usage-partitions/packing.ts). */
      packSettled: s.USAGE_PACK_SETTLED,
      /** Raw events older than this many months are archived and dropped (src/modules/usage-retention). */
      retentionMonths: s.USAGE_RETENTION_MONTHS,
      /** Absolute; unset: no archives (months are kept unless retentionWithoutArchive). */
      archiveDir: s.USAGE_ARCHIVE_DIR,
      retentionWithoutArchive: s.USAGE_RETENTION_WITHOUT_ARCHIVE,
    }),
    stripe: Object.freeze({
      /** Unset (or STRIPE_ENABLED=false): Stripe is off; everything works locally and nothing is sent. */
      secretKey: s.STRIPE_ENABLED === false ? undefined : secret(s, 'STRIPE_SECRET_KEY'),
      webhookSecret: secret(s, 'STRIPE_WEBHOOK_SECRET'),
      webhookToleranceSeconds: s.STRIPE_WEBHOOK_TOLERANCE_SECONDS,
      /** Largest webhook body: Stripe's events (a subscription with many items and its previous attributes) outgrow JSON_BODY_LIMIT. */
      webhookBodyLimit: s.WEBHOOK_BODY_LIMIT,
      apiBase: s.STRIPE_API_BASE,
      timeoutMs: s.STRIPE_TIMEOUT_MS,
    }),
    billing: Object.freeze({
      /** Unset: Stripe's default portal configuration. */
      portalConfiguration: s.BILLING_PORTAL_CONFIGURATION,
      /** Empty: every return_url is refused. */
      portalReturnUrls: Object.freeze([...(s.BILLING_PORTAL_RETURN_URLS ?? [])]),
      /** How long an upcoming-invoice answer is kept per customer, in milliseconds. */
      upcomingInvoiceCacheMs: s.UPCOMING_INVOICE_CACHE,
    }),
    rateLimits: Object.freeze({
      api: s.RATE_LIMIT_API,
      usage: s.RATE_LIMIT_USAGE,
      usageAddress: s.RATE_LIMIT_USAGE_ADDRESS,
      webhooks: s.RATE_LIMIT_WEBHOOKS,
      admin: s.RATE_LIMIT_ADMIN,
      console: s.RATE_LIMIT_CONSOLE,
      authFailures: s.RATE_LIMIT_AUTH_FAILURES,
    }),
    /** Unset: rate limits are counted in each instance's memory. */
    redisUrl: s.REDIS_URL,
    /** Every Redis call is bounded by this; a call that takes longer counts in memory instead. */
    redisCommandTimeoutMs: s.REDIS_COMMAND_TIMEOUT,
    /** After repeated Redis failures, Redis is skipped this long before one call probes it again. */
    redisBreakerMs: s.REDIS_BREAKER_SECONDS * 1000,
    /** A token that reads /metrics only, and that the admin limiter does not count. */
    metricsToken: secret(s, 'METRICS_TOKEN'),
    /** /openapi.json and /docs: without credentials, with an admin token, or not served at all. */
    apiDocs: s.API_DOCS ?? (s.NODE_ENV === 'production' ? 'admin' : 'public'),
    /** The admin console (/console) and its sessions (src/modules/console). */
    console: Object.freeze({
      enabled: s.ADMIN_CONSOLE,
      idleMs: s.CONSOLE_SESSION_IDLE * 1000,
      maxMs: s.CONSOLE_SESSION_MAX * 1000,
      /** The cookie is Secure (and named __Host-…) in production, where the service is behind TLS. */
      secureCookie: s.NODE_ENV === 'production',
    }),
    /** The file each secret was read from (<NAME>_FILE), so it can be read again on SIGHUP. */
    secretFiles: Object.freeze(secretFiles),
    forwarder: Object.freeze({
      enabled: s.FORWARDER_ENABLED,
      mode: s.FORWARDER_MODE,
      intervalMs: s.FORWARDER_INTERVAL_MS,
      batchSize: s.FORWARDER_BATCH_SIZE,
      concurrency: s.FORWARDER_CONCURRENCY,
      maxAttempts: s.FORWARDER_MAX_ATTEMPTS,
      backoffBaseMs: s.FORWARDER_BACKOFF_BASE_MS,
      backoffMaxMs: s.FORWARDER_BACKOFF_MAX_MS,
      leaseSeconds: s.FORWARDER_LEASE_SECONDS,
    }),
    events: Object.freeze({
      retentionDays: s.EVENT_RETENTION_DAYS,
    }),
    webhooks: Object.freeze({
      enabled: s.WEBHOOKS_ENABLED,
      /** Keys that encrypt endpoint secrets: the first encrypts, all decrypt. Empty: none set (see webhookSecretsKeysFor). */
      secretsKeys: Object.freeze<Buffer[]>([...(secret(s, 'WEBHOOK_SECRETS_KEY') ?? [])]),
      timeoutMs: s.WEBHOOK_TIMEOUT,
      /** Delay before each retry, in order; after the last, the delivery has failed. */
      retryScheduleMs: Object.freeze<number[]>([...s.WEBHOOK_RETRY_SCHEDULE]),
      disableAfterMs: s.WEBHOOK_DISABLE_AFTER,
      allowHttp: s.WEBHOOK_ALLOW_HTTP ?? s.NODE_ENV !== 'production',
      allowPrivate: s.WEBHOOK_ALLOW_PRIVATE,
      concurrency: s.WEBHOOK_CONCURRENCY,
      endpointConcurrency: s.WEBHOOK_ENDPOINT_CONCURRENCY,
    }),
    license: Object.freeze({
      /** Ed25519 private keys: the first signs, all are published. Empty: none set (a development key is used). */
      signingKeys: Object.freeze<PrivateSigningJwk[]>([...(secret(s, 'LICENSE_SIGNING_KEYS') ?? [])]),
      issuer: s.LICENSE_ISSUER,
      ttlSeconds: s.LICENSE_TTL,
      /** How long past_due/unpaid keeps a license in grace, from when payment started failing. */
      graceDays: s.LICENSE_GRACE_DAYS,
      /** license.expiring_soon is sent this many days before validity ends with no renewal in sight. */
      expiringSoonDays: s.LICENSE_EXPIRING_SOON_DAYS,
      /** An activation unseen this long is released and its seat freed. */
      heartbeatDays: s.LICENSE_HEARTBEAT_DAYS,
      /** A plan whose license customers without a subscription get (a free tier); unset: 404. */
      defaultPlan: s.LICENSE_DEFAULT_PLAN,
      /** The public keys' address given with each license (information only); never built from a request. */
      jwksUrl: s.LICENSE_JWKS_URL ?? `http://localhost:${s.PORT}/.well-known/jwks.json`,
      /** The root-signed key set to publish at /.well-known/license-keys; unset: see keySetFor. */
      keySet: s.LICENSE_KEY_SET,
    }),
  });
}

/** The whole configuration: process.env in, the frozen config out. The only description of it. */
export const configSchema = z
  .preprocess(withoutEmpty, settings)
  .check(...rules)
  .transform(toConfig);

export type Config = z.output<typeof configSchema>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** `SETTING (part): message`, or the message alone when it names its settings itself. */
function problem(issue: z.core.$ZodIssue): string {
  const [setting, ...parts] = issue.path.map(String);
  return setting === undefined ? issue.message : `${[setting, ...parts.map((p) => `(${p})`)].join(' ')}: ${issue.message}`;
}

/**
 * Parses and validates the environment (and the secret files it names) once, reporting every
 * problem in one ConfigError. Never echoes a value: settings may be secrets.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const result = configSchema.safeParse(env);
  if (!result.success) throw new ConfigError(result.error.issues.map(problem));
  return result.data;
}
