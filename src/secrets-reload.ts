import type { Logger } from 'pino';
import { ConfigError, loadConfig, type Config } from './config';
import type { Container } from './container';
import { systemContext } from './lib/request-context';

export interface ReloadResult {
  ok: boolean;
  /** Secrets read again from their files and in use from now on. */
  reloaded: string[];
  /** Secrets whose file changed but that only a restart applies (connections and clients hold them). */
  restartNeeded: string[];
  problems: string[];
}

type Targets = Pick<Container, 'adminTokens' | 'metricsTokens' | 'replaceWebhookSecret' | 'audit' | 'licenseSigner'>;

/**
 * On SIGHUP: the secret files are read again and validated by the same rules as at startup. The
 * environment is fixed when the process starts, so only secrets given as <NAME>_FILE can change;
 * the admin tokens, the metrics token, the webhook secret and the license signing keys are swapped in at once. Anything
 * invalid keeps every running secret. Names are logged and audited, never values.
 */
export async function reloadSecrets(env: NodeJS.ProcessEnv, running: Config, c: Targets, logger: Logger): Promise<ReloadResult> {
  let next: Config;
  try {
    next = loadConfig(env);
  } catch (err) {
    const problems = err instanceof ConfigError ? err.problems : ['the configuration could not be read'];
    logger.error({ problems }, 'secrets not reloaded: the configuration is invalid; the running secrets stay in use');
    await c.audit.recordDetached(systemContext(), { action: 'secrets.reload', outcome: 'failure', details: { problems } });
    return { ok: false, reloaded: [], restartNeeded: [], problems };
  }
  const files = next.secretFiles;
  const reloaded: string[] = [];
  if (files.ADMIN_API_TOKEN) {
    c.adminTokens.replace(next.adminTokens);
    reloaded.push('ADMIN_API_TOKEN');
  }
  if (files.METRICS_TOKEN) {
    c.metricsTokens.replace(next.metricsToken ? [next.metricsToken] : []);
    reloaded.push('METRICS_TOKEN');
  }
  if (files.STRIPE_WEBHOOK_SECRET) {
    c.replaceWebhookSecret(next.stripe.webhookSecret);
    reloaded.push('STRIPE_WEBHOOK_SECRET');
  }
  if (files.LICENSE_SIGNING_KEYS) {
    c.licenseSigner.replace(next.license.signingKeys);
    reloaded.push('LICENSE_SIGNING_KEYS');
  }
  const restartNeeded: string[] = [];
  if (files.STRIPE_SECRET_KEY && next.stripe.secretKey !== running.stripe.secretKey) restartNeeded.push('STRIPE_SECRET_KEY');
  if (files.DATABASE_URL && next.databaseUrl !== running.databaseUrl) restartNeeded.push('DATABASE_URL');
  logger.info(
    { reloaded, restart_needed: restartNeeded },
    reloaded.length ? 'secrets reloaded from their files' : 'SIGHUP: no secret is read from a file (<NAME>_FILE); nothing to reload',
  );
  if (restartNeeded.length) logger.warn({ restart_needed: restartNeeded }, 'these secrets changed in their files; restart to use them');
  await c.audit.recordDetached(systemContext(), { action: 'secrets.reload', outcome: 'success', details: { reloaded, restart_needed: restartNeeded } });
  return { ok: true, reloaded, restartNeeded, problems: [] };
}
