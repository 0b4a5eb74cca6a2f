import { ConfigError, loadConfig, type Config } from '../config';

export interface CheckResult {
  name: string;
  ok: boolean;
  /** What is wrong and how to fix it (failures), or what was found. */
  detail: string;
}

export interface Probes {
  /** Pending migrations, or an error message when the database cannot be reached. */
  migrations(config: Config): Promise<{ pending: string[] } | { error: string }>;
  /** null when Redis answers, else why not. */
  redis(url: string): Promise<string | null>;
  /** High or critical advisories in production dependencies, or an error message. */
  audit(): Promise<{ high: number } | { error: string }>;
}

/**
 * The production checklist. Each item passes or fails with the fix; nothing here changes anything.
 * `instances`: how many instances will run (Redis is needed for shared limits above one).
 */
export async function runChecks(env: NodeJS.ProcessEnv, probes: Probes, instances: number): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const add = (name: string, ok: boolean, detail: string) => results.push({ name, ok, detail });

  add('NODE_ENV is production', env.NODE_ENV === 'production', env.NODE_ENV === 'production' ? 'production' : 'set NODE_ENV=production');
  let config: Config;
  try {
    config = loadConfig({ ...env, NODE_ENV: 'production' });
    add('configuration valid for production', true, 'database URL, admin token, Stripe settings accepted');
  } catch (err) {
    const problems = err instanceof ConfigError ? err.problems : [String(err)];
    for (const p of problems) add('configuration valid for production', false, p);
    return results;
  }

  const stripeOn = !!config.stripe.secretKey;
  add(
    'Stripe webhook secret set',
    !stripeOn || !!config.stripe.webhookSecret,
    stripeOn ? (config.stripe.webhookSecret ? 'set' : 'set STRIPE_WEBHOOK_SECRET to the endpoint’s signing secret') : 'Stripe explicitly off',
  );
  if (stripeOn) {
    const live = /^(sk|rk)_live_/.test(config.stripe.secretKey!);
    add('Stripe key is a live key', live, live ? 'live mode' : 'a test-mode key in production: use the live restricted key (rk_live_…)');
  }
  const keys = config.license.signingKeys;
  add(
    'license signing keys',
    keys.length > 0,
    keys.length
      ? `${keys.length} Ed25519 key(s); signing with kid ${keys[0]!.kid}; all published at /.well-known/jwks.json`
      : 'set LICENSE_SIGNING_KEYS (make one: npm run license-key)',
  );
  // A key set past its exp is refused by instances: those relying on it stop accepting licenses of rotated-in keys.
  const keySet = config.license.keySet;
  const daysLeft = keySet ? Math.floor((keySet.exp * 1000 - Date.now()) / 86_400_000) : null;
  add(
    'license key set (LICENSE_KEY_SET)',
    daysLeft === null || daysLeft >= 30,
    !keySet
      ? 'none: instances verify only against license keys built into the software (a new signing key needs new software); see docs/LICENSES.md'
      : `signed by root ${keySet.rootKid}, lists ${keySet.keys.map((k) => k.kid).join(', ')}; expires ${new Date(keySet.exp * 1000).toISOString()}` +
          (daysLeft! < 30 ? ` (in ${Math.max(daysLeft!, 0)} days): sign a new one offline (npm run license-key -- sign-key-set)` : ''),
  );
  // Required by the configuration in production: named here so the checklist shows how many keys decrypt.
  const webhookKeys = config.webhooks.secretsKeys.length;
  add(
    'webhook secrets key (WEBHOOK_SECRETS_KEY)',
    webhookKeys > 0,
    webhookKeys
      ? `${webhookKeys} key(s): the first encrypts webhook endpoint secrets, all decrypt; the same on every instance`
      : 'set WEBHOOK_SECRETS_KEY (openssl rand -base64 32)',
  );
  add(
    'webhook endpoints https only',
    !config.webhooks.allowHttp,
    config.webhooks.allowHttp ? 'WEBHOOK_ALLOW_HTTP=true lets endpoint URLs be plain http: events and their signatures travel in clear' : 'https only',
  );
  add(
    'metrics token set',
    !!config.metricsToken,
    config.metricsToken ? 'set' : 'set METRICS_TOKEN (openssl rand -hex 32) so Prometheus does not need the admin token',
  );
  add(
    'behind a TLS proxy (TRUST_PROXY)',
    config.trustProxy !== false,
    config.trustProxy !== false
      ? `trust proxy: ${JSON.stringify(config.trustProxy)}; keep HSTS on at the proxy`
      : 'terminate TLS (with HSTS) at nginx or an ingress and set TRUST_PROXY to it (see docs/SECURITY-SETUP.md)',
  );
  add(
    'log level',
    !['debug', 'trace'].includes(config.logLevel),
    `LOG_LEVEL=${config.logLevel}${['debug', 'trace'].includes(config.logLevel) ? ': use info in production' : ''}`,
  );

  if (instances > 1 && !config.redisUrl) {
    add('shared rate limits', false, `${instances} instances without REDIS_URL: each would count on its own; set REDIS_URL`);
  } else if (config.redisUrl) {
    const problem = await probes.redis(config.redisUrl);
    add('shared rate limits', problem === null, problem === null ? 'Redis answers' : `Redis at REDIS_URL does not answer: ${problem}`);
  } else {
    add('shared rate limits', true, 'one instance: in-memory counters are enough');
  }

  const m = await probes.migrations(config);
  if ('error' in m) add('database reachable, migrations current', false, `cannot reach the database: ${m.error}`);
  else
    add(
      'database reachable, migrations current',
      m.pending.length === 0,
      m.pending.length ? `pending: ${m.pending.join(', ')}; run npm run migrate` : 'up to date',
    );

  const a = await probes.audit();
  if ('error' in a) add('npm audit: no high-severity advisories', false, `npm audit could not run: ${a.error}`);
  else
    add(
      'npm audit: no high-severity advisories',
      a.high === 0,
      a.high ? `${a.high} high or critical advisories: run npm audit --omit=dev and update` : 'clean',
    );
  return results;
}
