import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { parseDuration } from './lib/duration';
import { parseSigningKeys, type PrivateSigningJwk } from './modules/licenses/signing-keys';
import { parseKeySet, type KeySet } from './modules/licenses/key-set';
import { parseLimit } from './lib/limit-format';
import { parseReturnUrlRules, type ReturnUrlRule } from './modules/billing-portal/return-urls';
import { archiveDirProblem } from './modules/usage-retention/archive-dir';

/*
 * Every setting the service reads, each with its parser and its description. The description is the
 * comment above the setting in .env.example (a test holds them equal): change the text here and there.
 * Rules between settings and the shape the service uses are in config.ts.
 */

const bool = z.enum(['true', 'false', '1', '0', 'yes', 'no']).transform((v) => v === 'true' || v === '1' || v === 'yes');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const list = (v: string) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

const bodySize = (message: string) =>
  z
    .string()
    .regex(/^\d+(b|kb|mb)$/i, message)
    .transform((v) => v.toLowerCase());

const postgresUrl = z.string().regex(/^postgres(ql)?:\/\/\S+$/, 'must be a postgres:// or postgresql:// URL');

// express `trust proxy`: false, true, a hop count, or a comma-separated list of addresses/subnets.
const trustProxy = z
  .string()
  .regex(/^[\w.:/, -]+$/, 'must be false, true, a hop count, or addresses/subnets')
  .transform((v): boolean | number | string[] => {
    if (v === 'false' || v === '0') return false;
    if (v === 'true') return true;
    if (/^\d+$/.test(v)) return Number(v);
    return list(v);
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

const metricName = '[a-z][a-z0-9_]{0,62}';
const metrics = z
  .string()
  .regex(new RegExp(`^${metricName}(\\s*,\\s*${metricName})*$`), 'comma-separated metric names: lowercase letters, digits, _')
  .transform((v) => [...new Set(list(v))]);
const meterEvents = z
  .string()
  .regex(/^([a-z][a-z0-9_]*:[A-Za-z0-9_.-]{1,100})(\s*,\s*[a-z][a-z0-9_]*:[A-Za-z0-9_.-]{1,100})*$/, 'comma-separated metric:event_name pairs')
  .transform((v) => list(v).map((pair) => pair.split(':').map((s) => s.trim()) as [metric: string, eventName: string]));

// The secrets, which may also come from a file (<NAME>_FILE).
const adminTokens = z.string().transform(list);
const metricsToken = z.string().min(32, 'must be at least 32 characters');
const stripeSecretKey = z.string().regex(/^(sk|rk)_(test|live)_[A-Za-z0-9]+$/, 'must be a Stripe secret or restricted key (sk_… or rk_…)');
const stripeWebhookSecret = z.string().regex(/^whsec_[A-Za-z0-9+/=_-]+$/, 'must be a Stripe webhook signing secret (whsec_…)');
/** Ed25519 private keys (JWK, JWK array or PEM); a refusal names the problem, never the key. */
const signingKeys = z.string().transform((v, ctx): PrivateSigningJwk[] => {
  try {
    return parseSigningKeys(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message, input: undefined });
    return z.NEVER;
  }
});

/**
 * Keys that encrypt webhook endpoint secrets at rest: 32 random bytes each, base64 or hex, comma-separated.
 * The first encrypts; every one decrypts (so a key can be rotated). A refusal never shows a key.
 */
const webhookSecretsKeys = z.string().transform((v, ctx): Buffer[] => {
  const keys = list(v).map((k) => (/^[0-9a-f]{64}$/i.test(k) ? Buffer.from(k, 'hex') : /^[A-Za-z0-9+/]{43}=$/.test(k) ? Buffer.from(k, 'base64') : null));
  if (keys.length === 0 || keys.some((k) => k === null || k.length !== 32)) {
    ctx.addIssue({
      code: 'custom',
      message: 'must be 32 random bytes in base64 or hex (openssl rand -base64 32), comma-separated to rotate',
      input: undefined,
    });
    return z.NEVER;
  }
  return keys as Buffer[];
});

/** Where the Stripe customer portal may send people back to: origins or URL prefixes, comma-separated. */
const returnUrlRules = z.string().transform((v, ctx): ReturnUrlRule[] => {
  try {
    return parseReturnUrlRules(list(v));
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `${(err as Error).message}: give origins (https://vendor.example) or URL prefixes, comma-separated` });
    return z.NEVER;
  }
});

/** A root-signed license key set (LICENSE_KEY_SET): its shape, and which keys it lists. */
const keySet = z.string().transform((v, ctx): KeySet => {
  try {
    return parseKeySet(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message, input: undefined });
    return z.NEVER;
  }
});

/**
 * `<NAME>_FILE`: the path of a file holding the secret, as secret managers and Kubernetes mount them.
 * The contents obey the plain setting's rules; every problem is named after the _FILE setting (what the
 * operator set) and never shows the contents. The path is kept so SIGHUP can read the file again.
 */
const secretFile = <T>(plain: z.ZodType<T, string>) =>
  z.string().transform((file, ctx): { file: string; value: T; mode: number } => {
    let text: string;
    let mode: number;
    try {
      text = fs.readFileSync(file, 'utf8');
      // Its permissions, checked against NODE_ENV with the other rules (config.ts).
      mode = fs.statSync(file).mode;
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})` });
      return z.NEVER;
    }
    // Editors and `echo` end files with a newline: trimmed, as the plain setting's value is.
    const value = text.trim();
    if (value === '') {
      ctx.addIssue({ code: 'custom', message: `${file} is empty` });
      return z.NEVER;
    }
    const parsed = plain.safeParse(value);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) ctx.addIssue({ code: 'custom', message: issue.message, input: undefined });
      return z.NEVER;
    }
    return { file, value: parsed.data, mode };
  });

/** 5s, 30m, 2h, 1d, as milliseconds. */
const shortDuration = (fallback: string, maxDays: number) =>
  z
    .string()
    .default(fallback)
    .transform((v, ctx) => {
      const seconds = parseDuration(v, { seconds: true });
      if (seconds === null || seconds > maxDays * 86_400) {
        ctx.addIssue({ code: 'custom', message: `must look like 10s, 5m, 2h or 1d (at most ${maxDays}d)` });
        return z.NEVER;
      }
      return seconds * 1000;
    });

/** A comma-separated list of delays (5s,5m,30m,2h), as milliseconds. */
const retrySchedule = z
  .string()
  .default('5s,5m,30m,2h,5h,10h,10h,14h,14h,14h')
  .transform((v, ctx) => {
    const delays = list(v).map((d) => parseDuration(d, { seconds: true }));
    if (delays.length === 0 || delays.length > 50 || delays.some((d) => d === null || d > 7 * 86_400)) {
      ctx.addIssue({ code: 'custom', message: 'must be 1-50 comma-separated delays like 5s,5m,30m,2h (each at most 7d)' });
      return z.NEVER;
    }
    return (delays as number[]).map((d) => d * 1000);
  });

/** 7d, 12h, 30m, as seconds. */
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

/** on/off (or true/false, 1/0, yes/no). */
const onOff = z.enum(['on', 'off', 'true', 'false', '1', '0', 'yes', 'no']).transform((v) => v === 'on' || v === 'true' || v === '1' || v === 'yes');

/** USAGE_ARCHIVE_DIR: checked at startup (a folder, writable by the service, by no one else); resolved to an absolute path. */
const archiveDir = z
  .string()
  .min(1)
  .transform((dir, ctx) => {
    const problem = archiveDirProblem(dir);
    if (problem) {
      ctx.addIssue({ code: 'custom', message: problem });
      return z.NEVER;
    }
    return path.resolve(dir);
  });

const listen = 'Address and port to listen on.';
const forwarderBackoff = 'Retry delay: between half and all of min(MAX, BASE * 2^(attempt-1)), in milliseconds.';

export const settings = z.object({
  NODE_ENV: z
    .enum(['development', 'test', 'production'])
    .default('development')
    .describe('development | test | production. Production refuses to start without DATABASE_URL and a strong ADMIN_API_TOKEN.'),
  HOST: z.string().min(1).default('0.0.0.0').describe(listen),
  PORT: int(0, 65535).default(3000).describe(listen),
  DATABASE_URL: postgresUrl
    .optional()
    .describe(
      'PostgreSQL connection URL (postgres://user:password@host:5432/database). Unset (and not production): an embedded PostgreSQL is started under DATA_DIR and stopped on exit.',
    ),
  DATABASE_URL_FILE: secretFile(postgresUrl)
    .optional()
    .describe('Or a file holding the URL (a mounted secret), e.g. /run/secrets/database-url. Not both. Read at startup only: a new URL needs a restart.'),
  DATA_DIR: z
    .string()
    .min(1)
    .default('./.data')
    .describe('Where local state lives: the embedded PostgreSQL cluster and the generated development admin token.'),
  EMBEDDED_PG_PORT: int(0, 65535).default(0).describe('Port for the embedded PostgreSQL; 0 picks a free one at each start.'),
  DB_POOL_MAX: int(1, 200).default(10).describe('Maximum connections in the database pool of each instance.'),
  MIGRATE_ON_START: bool.default(true).describe('Apply pending migrations at startup (true/false). With false, run `npm run migrate` yourself.'),
  ADMIN_API_TOKEN: adminTokens
    .optional()
    .describe(
      'Admin bearer token(s). Several may be given, comma-separated, to rotate without downtime. ' +
        'Production: each at least 32 characters of generated text; make one with `openssl rand -hex 32`. ' +
        'Unset outside production: one is generated, saved in DATA_DIR/admin-token and printed once.',
    ),
  ADMIN_API_TOKEN_FILE: secretFile(adminTokens)
    .optional()
    .describe(
      'Or a file holding the token(s), same format (a mounted secret), e.g. /run/secrets/admin-token. Not both. ' +
        'Read again on SIGHUP: rewrite the file, `kill -HUP <pid>`, and the new tokens apply without a restart ' +
        '(an invalid file keeps the running tokens and logs an error).',
    ),
  LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info')
    .describe('fatal | error | warn | info | debug | trace | silent'),
  LOG_PRETTY: bool.optional().describe('Human-readable logs (true/false). Default: true in development, JSON otherwise.'),
  BCRYPT_COST: int(4, 15).default(12).describe('bcrypt cost for API key hashes (4-15). 12 costs ~250 ms per hash here; verification is cached.'),
  AUTH_MAX_CONCURRENT_VERIFICATIONS: int(1, 64)
    .default(4)
    .describe(
      'Key verifications that need bcrypt (a key not yet remembered) running at once in this instance. ' +
        'Above it the request gets a fast 503 with Retry-After, so a flood of unknown keys can never queue up bcrypt work; ' +
        'keys already remembered never wait for it. Half of it at most goes to keys that match no live key, ' +
        'so such a flood cannot take the slots real keys need.',
    ),
  JSON_BODY_LIMIT: bodySize('must look like 100kb, 1mb or 2048b').default('100kb').describe('Largest JSON body accepted (e.g. 100kb, 1mb).'),
  API_KEY_CACHE_TTL_SECONDS: int(0, 3600)
    .default(60)
    .describe(
      'A verified API key is remembered (by its SHA-256), so bcrypt runs once per key. ' +
        'Past this many seconds a remembered key is re-checked with one primary-key lookup (never bcrypt). ' +
        "Revocation evicts at once on every instance (Postgres LISTEN/NOTIFY); this TTL bounds staleness if an instance's " +
        'listener connection is down. 0 disables the cache.',
    ),
  API_KEY_CACHE_MAX_ENTRIES: int(0, 1_000_000).default(10_000).describe('Upper bound on remembered key verdicts per instance.'),
  MAX_ACTIVE_KEYS_PER_CUSTOMER: int(1, 50).default(5).describe('Active keys a customer may hold at once (keys in a rotation grace period count).'),
  LAST_USED_FLUSH_SECONDS: int(1, 3600).default(30).describe('How often last_used_at is written, in one batched UPDATE (seconds).'),
  TRUST_PROXY: trustProxy
    .default(false)
    .describe(
      'Express "trust proxy": false, a hop count (1 behind one nginx/ingress), or comma-separated addresses/subnets of your ' +
        "proxies (loopback, 10.0.0.0/8). Decides which address is the client's. " +
        '"true" (trust any X-Forwarded-For) lets every client choose its own address and so dodge every per-address limit: production refuses it, ' +
        "and also hop counts above 3 and subnets that reach into public address space (a single public address, your load balancer's, is fine).",
    ),
  SHUTDOWN_TIMEOUT_SECONDS: int(1, 300).default(10).describe('Graceful shutdown: how long requests in flight may take after SIGTERM before being cut.'),

  USAGE_METRICS: metrics.prefault('api_calls').describe('Metric names customers may report, comma-separated (lowercase letters, digits, _).'),
  USAGE_METER_EVENTS: meterEvents
    .optional()
    .describe('Stripe meter event_name per metric, as metric:event_name pairs, comma-separated. A metric not listed is sent under its own name.'),
  USAGE_MAX_BATCH: int(1, 10_000).default(1000).describe('Most events in one POST /api/usage batch.'),
  USAGE_BODY_LIMIT: bodySize('must look like 1mb or 512kb')
    .default('1mb')
    .describe('Largest JSON body accepted on POST /api/usage (batches are bigger than other bodies).'),
  USAGE_BUNDLE_MAX_BYTES: bodySize('must look like 20mb or 512kb')
    .default('20mb')
    .describe('Largest usage bundle accepted (POST /api/usage/bundles and POST /api/customers/:id/usage-bundles; 413 above).'),
  USAGE_BUNDLE_MAX_EVENTS: int(1, 1_000_000)
    .default(100_000)
    .describe("Most events in one usage bundle (the client's queue holds at most 100,000 by default)."),
  USAGE_PARTITIONS_AHEAD: int(1, 24)
    .default(3)
    .describe('Months after the current UTC month that always have a usage_events partition (created hourly, without blocking writes).'),
  USAGE_PACK_SETTLED: onOff
    .default(true)
    .describe(
      'on/off. on: a month POST /api/usage can no longer write to (36 days after its end) is packed, its events moved into one row per ' +
        'customer, day and metric (about 45 bytes an event instead of about 240). off: its indexes are only rebuilt.',
    ),
  USAGE_RETENTION_MONTHS: int(2, 1200)
    .default(13)
    .describe(
      'Months of raw usage events kept (2 or more). An older month is archived (USAGE_ARCHIVE_DIR) and dropped once every event in it ' +
        'reached Stripe (or Stripe is off) and no period it touches is open; the daily totals are kept forever.',
    ),
  USAGE_ARCHIVE_DIR: archiveDir
    .optional()
    .describe(
      "Where a month's raw events are archived before they are dropped (usage_events_YYYY_MM.ndjson.gz and its manifest): a folder " +
        'the service can write, not writable by group or others. Unset: months are kept, unless USAGE_RETENTION_WITHOUT_ARCHIVE=on.',
    ),
  USAGE_RETENTION_WITHOUT_ARCHIVE: onOff
    .default(false)
    .describe('on/off. on: without USAGE_ARCHIVE_DIR, old months are dropped with no archive (only the daily totals remain). Default off: they are kept.'),

  STRIPE_SECRET_KEY: stripeSecretKey
    .optional()
    .describe(
      'Secret (sk_...) or restricted (rk_...) key. Unset: Stripe is off, everything works locally, usage is kept as local ' +
        'and nothing is sent. Required in production unless STRIPE_ENABLED=false.',
    ),
  STRIPE_SECRET_KEY_FILE: secretFile(stripeSecretKey)
    .optional()
    .describe('Or a file holding the key. Not both. Read at startup only: a new key needs a restart.'),
  STRIPE_API_BASE: z
    .url({ protocol: /^https?$/, error: 'must be an http(s) URL' })
    .optional()
    .describe("Another Stripe API server (stripe-mock, a local fake, a proxy), e.g. http://127.0.0.1:12111. Unset: Stripe's own."),
  STRIPE_TIMEOUT_MS: int(100, 120_000).default(10_000).describe('Timeout of each Stripe call, in milliseconds.'),
  STRIPE_ENABLED: bool.optional().describe('true/false. Unset: on when STRIPE_SECRET_KEY is set. Production must say false explicitly to run without Stripe.'),
  STRIPE_WEBHOOK_SECRET: stripeWebhookSecret
    .optional()
    .describe(
      'Signing secret (whsec_...) of the webhook endpoint POST /api/webhooks/stripe. Required in production when Stripe is on; ' +
        'without it every webhook is refused.',
    ),
  STRIPE_WEBHOOK_SECRET_FILE: secretFile(stripeWebhookSecret)
    .optional()
    .describe('Or a file holding the signing secret. Not both. Read again on SIGHUP, so a rolled secret applies without a restart.'),
  STRIPE_WEBHOOK_TOLERANCE_SECONDS: int(1, 3600)
    .default(300)
    .describe(
      "How far a webhook signature's timestamp may be from now, in seconds: older is refused as a replay, " +
        'newer (beyond this much clock skew) as forged in advance.',
    ),
  WEBHOOK_BODY_LIMIT: bodySize('must look like 1mb or 512kb')
    .default('1mb')
    .describe(
      "Largest body accepted on POST /api/webhooks/stripe (413 above). Stripe's events outgrow JSON_BODY_LIMIT: " +
        'a subscription update with 20 items and its previous attributes is ~93kb.',
    ),

  BILLING_PORTAL_CONFIGURATION: z
    .string()
    .regex(/^bpc_[A-Za-z0-9]{1,100}$/, 'must be a Stripe customer portal configuration id (bpc_...)')
    .optional()
    .describe("The Stripe customer portal configuration (bpc_...) portal sessions use. Unset: the account's default configuration."),
  BILLING_PORTAL_RETURN_URLS: returnUrlRules
    .optional()
    .describe(
      'Where the customer portal may send people back to, comma-separated: exact origins (https://vendor.example: any page of it) ' +
        'or URL prefixes (https://vendor.example/billing/). A return_url matching none is refused (422). Unset: every one is refused.',
    ),
  UPCOMING_INVOICE_CACHE: shortDuration('60s', 1).describe(
    "How long GET /api/invoices/upcoming keeps a customer's answer (10s, 5m): polling within it makes no Stripe call.",
  ),

  FORWARDER_ENABLED: bool
    .default(true)
    .describe(
      'Run the forwarder in this instance (true/false), and the true-up worker (late usage billed as Stripe invoice items), ' +
        'which shares the FORWARDER_* settings (interval, concurrency, attempts, backoff, lease).',
    ),
  FORWARDER_INTERVAL_MS: int(10, 3_600_000).default(1000).describe('How often to look for due events when the last batch was not full, in milliseconds.'),
  FORWARDER_MODE: z
    .enum(['stream', 'v1'])
    .default('stream')
    .describe(
      "stream | v1. stream: Stripe's meter event stream (v2), up to 100 events per call on a short-lived session token; " +
        'it is the default because one call per event (v1) tops out near 50 events/s per instance against a slow Stripe, ' +
        'while the stream forwards thousands; Stripe validates stream events later and reports rejects by webhook. ' +
        'v1: one billing.meterEvents.create call per event, validated at once; for accounts without the stream.',
    ),
  FORWARDER_BATCH_SIZE: int(1, 10_000)
    .default(1000)
    .describe('Events claimed per lease (one short transaction, FOR UPDATE SKIP LOCKED); a lease is sent as several Stripe calls.'),
  FORWARDER_CONCURRENCY: int(1, 64).default(8).describe('Stripe calls in flight at once per instance (stream: up to 100 events each; v1: one event each).'),
  FORWARDER_MAX_ATTEMPTS: int(1, 100).default(10).describe('Tries before an event (or a true-up) is parked as failed (admins can retry it).'),
  FORWARDER_BACKOFF_BASE_MS: int(1, 3_600_000).default(2000).describe(forwarderBackoff),
  FORWARDER_BACKOFF_MAX_MS: int(1, 86_400_000).default(3_600_000).describe(forwarderBackoff),
  FORWARDER_LEASE_SECONDS: int(5, 3600)
    .default(10)
    .describe(
      'How long claimed events stay reserved for one instance without a renewal; renewed every third of it while it holds them ' +
        '(queued, in a Stripe call, or their outcome being written), so what a dead instance held is sent again within about this long.',
    ),

  EVENT_RETENTION_DAYS: int(1, 3650)
    .default(30)
    .describe('Days events (GET /api/events) and their webhook deliveries are kept; older ones are deleted. At least as long as WEBHOOK_RETRY_SCHEDULE lasts.'),
  WEBHOOKS_ENABLED: bool
    .default(true)
    .describe('Deliver events to webhook endpoints from this instance (true/false). Events are recorded either way; any instance with it on delivers them.'),
  WEBHOOK_SECRETS_KEY: webhookSecretsKeys
    .optional()
    .describe(
      "Encrypts the webhook endpoints' signing secrets in the database (AES-256-GCM), so a database dump alone does not reveal them: " +
        '32 random bytes in base64 or hex (openssl rand -base64 32). Several, comma-separated, to rotate: the first encrypts, all decrypt. ' +
        'Required in production; unset elsewhere: one is generated once and kept in DATA_DIR/webhook-secrets-key (0600).',
    ),
  WEBHOOK_SECRETS_KEY_FILE: secretFile(webhookSecretsKeys)
    .optional()
    .describe('Or a file holding it (a mounted secret). Not both. Read at startup only: a new key needs a restart.'),
  WEBHOOK_TIMEOUT: shortDuration('10s', 1).describe(
    'How long a webhook delivery may take (connect, send, answer) before it counts as failed and is retried (10s, 30s).',
  ),
  WEBHOOK_RETRY_SCHEDULE: retrySchedule.describe(
    'Delays between a failed delivery and its next attempt, comma-separated (5s,5m,30m,2h…); each gets up to 10% jitter. ' +
      'After the last one the delivery is marked failed. The default retries for about 3 days.',
  ),
  WEBHOOK_DISABLE_AFTER: shortDuration('5d', 90).describe(
    'An endpoint whose deliveries have failed this long without one success is disabled, and a webhook_endpoint.disabled event is sent to the others.',
  ),
  WEBHOOK_ALLOW_HTTP: bool
    .optional()
    .describe('Allow http:// endpoint URLs (true/false). Unset: allowed in development and test, refused in production (https only).'),
  WEBHOOK_ALLOW_PRIVATE: bool
    .default(false)
    .describe(
      'Allow endpoints on loopback, private, link-local and other non-public addresses (true/false). For development and tests only: ' +
        'production refuses to start with it, since a webhook URL is a way into the private network.',
    ),
  WEBHOOK_CONCURRENCY: int(1, 1000).default(200).describe('Webhook deliveries in flight at once in this instance.'),
  WEBHOOK_ENDPOINT_CONCURRENCY: int(1, 1000)
    .default(50)
    .describe('Deliveries in flight at once to one endpoint, per instance: a slow endpoint never takes every slot.'),
  LICENSE_EXPIRING_SOON_DAYS: int(1, 365)
    .default(7)
    .describe("How many days before a license's validity ends, with no renewal in sight, the license.expiring_soon event is sent (once)."),

  RATE_LIMIT_API: limit('100/15m').describe('Customer routes other than POST /api/usage, per client address (before authentication).'),
  RATE_LIMIT_USAGE: limit('60/1h').describe('POST /api/usage, per customer (after authentication, whatever addresses its instances use).'),
  RATE_LIMIT_USAGE_ADDRESS: limit('600/1m').describe('POST /api/usage, per client address, before authentication (a whole fleet behind one NAT shares it).'),
  RATE_LIMIT_WEBHOOKS: limit('100/1m').describe('POST /api/webhooks/stripe, per client address.'),
  RATE_LIMIT_ADMIN: limit('10/1h').describe('Admin routes, per client address (requests with METRICS_TOKEN are not counted).'),
  RATE_LIMIT_CONSOLE: limit('600/1m').describe(
    'Admin routes called by the admin console (with its session cookie and no bearer token), per client address, instead of RATE_LIMIT_ADMIN: a page makes several requests.',
  ),
  RATE_LIMIT_AUTH_FAILURES: limit('20/15m').describe(
    'Failed authentications, per client address, per customer id named in a key, and per key. ' +
      'Each attempt that needs a key check is counted before the check (a success gives it back), so hung-up and concurrent attempts count too. ' +
      "Over the limit an address gets 429 without any key check, except for a key that matches a live key's start " +
      '(checked against its own per-key count), so a flood from a shared address does not lock the real keys there out. ' +
      'A remembered valid key and a correct admin or metrics token are never refused by it.',
  ),
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\/\S+$/, 'must be a redis:// or rediss:// URL')
    .optional()
    .describe(
      'Redis for rate-limit counters shared by every instance (redis://host:6379). Unset: each instance counts in memory. ' +
        'If Redis goes away, limits keep working per instance until it returns.',
    ),
  REDIS_COMMAND_TIMEOUT: int(10, 10_000)
    .default(200)
    .describe(
      'Milliseconds a Redis call may take. A call that takes longer (a Redis that accepts connections but does not answer) ' +
        'is a failure: that request is counted in memory at once, as when Redis is down.',
    ),
  REDIS_BREAKER_SECONDS: int(1, 300)
    .default(5)
    .describe(
      'After 3 Redis failures in a row, limits skip Redis (counted per instance) for this many seconds, ' +
        'then one call probes it; shared counting resumes when the probe answers.',
    ),
  METRICS_TOKEN: metricsToken.optional().describe('A token (32+ characters) that reads /metrics, for Prometheus; its scrapes do not spend the admin limit.'),
  METRICS_TOKEN_FILE: secretFile(metricsToken)
    .optional()
    .describe("Or a file holding it (Prometheus's credentials_file can be the same file). Not both. Read again on SIGHUP."),
  API_DOCS: z
    .enum(['public', 'admin', 'off'])
    .optional()
    .describe(
      'Who may read the API description (/openapi.json, /docs and its files): public (no credentials), ' +
        'admin (an admin token), or off (not served: 404). Unset: public in development and test, admin in production.',
    ),

  ADMIN_CONSOLE: onOff
    .default(true)
    .describe(
      'The admin console at /console (on or off). Off: the page, its files and the console session routes are not served (404); ' +
        'admin tokens keep working as before.',
    ),
  CONSOLE_SESSION_IDLE: duration('30m', 1).describe(
    'A console session ends after this long without a request (30m, 2h; at most 1d). It is kept in the database, so every instance sees it.',
  ),
  CONSOLE_SESSION_MAX: duration('12h', 30).describe(
    'A console session ends this long after sign-in, however busy (12h, 1d; at most 30d). Signing in again starts a new one.',
  ),

  LICENSE_SIGNING_KEYS: signingKeys
    .optional()
    .describe(
      'Ed25519 private keys that sign licenses: one JWK object {"kty":"OKP","crv":"Ed25519","d":…,"x":…,"kid":…}, ' +
        'a JSON array of JWKs, or PEM "-----BEGIN PRIVATE KEY-----" blocks (PKCS#8). The first signs; all are ' +
        "published at /.well-known/jwks.json (kid: the JWK's own, else its RFC 7638 thumbprint). Make one with " +
        '`npm run license-key`. Required in production; unset in development: one is generated once and kept ' +
        'in DATA_DIR/license-signing-key.json (0600).',
    ),
  LICENSE_SIGNING_KEYS_FILE: secretFile(signingKeys)
    .optional()
    .describe('Or a file holding them (a mounted secret). Not both. Read again on SIGHUP (key rotation without a restart).'),
  LICENSE_ISSUER: z
    .string()
    .regex(/^[\x21-\x7e]{1,200}$/, 'must be 1-200 printable ASCII characters without spaces')
    .default('billing-service')
    .describe('The license\'s "iss" claim.'),
  LICENSE_TTL: duration('7d', 365).describe(
    'How long a license is valid after it is issued (7d, 12h, 30m; at most 365d); never past the end of the paid period or of the grace period.',
  ),
  LICENSE_GRACE_DAYS: int(0, 365).default(14).describe('Days a past_due or unpaid subscription keeps a license in "grace", from when payment started failing.'),
  LICENSE_HEARTBEAT_DAYS: int(1, 365).default(14).describe('Days an activated instance may go without fetching its license before its seat is released.'),
  LICENSE_DEFAULT_PLAN: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'must be a plan code')
    .optional()
    .describe('A plan code whose license customers without any subscription get (a free tier). Unset: they get 404 LICENSE_NOT_FOUND.'),
  LICENSE_JWKS_URL: z
    .url({ protocol: /^https?$/, error: 'must be an http(s) URL' })
    .optional()
    .describe(
      "The public keys' address given to instances with each license (https://billing.example.com/.well-known/jwks.json), " +
        'for information: instances verify against the keys built into their software, never against this. Required in production; ' +
        'unset elsewhere: http://localhost:<PORT>/.well-known/jwks.json. Never taken from the request.',
    ),
  LICENSE_KEY_SET: keySet
    .optional()
    .describe(
      'The license keys signed by the root key (a compact JWS, made offline with `npm run license-key -- sign-key-set`), served at ' +
        '/.well-known/license-keys: instances whose software holds the root accept a new signing key from it. It must list the ' +
        'signing key. Unset: in production nothing is served there (instances then verify only against keys built in); in ' +
        'development a root kept in DATA_DIR/license-root-key.json signs it.',
    ),
});

export type Settings = z.output<typeof settings>;

/** The secrets that may instead be read from a file: `<NAME>_FILE` holds the path. */
export const FILE_SECRETS = [
  'ADMIN_API_TOKEN',
  'METRICS_TOKEN',
  'STRIPE_SECRET_KEY',
  'STRIPE_WEBHOOK_SECRET',
  'DATABASE_URL',
  'LICENSE_SIGNING_KEYS',
  'WEBHOOK_SECRETS_KEY',
] as const;
export type FileSecret = (typeof FILE_SECRETS)[number];
