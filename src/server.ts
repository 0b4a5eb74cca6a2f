// First: a SIGHUP during start-up must not end the process (the handler is in place before anything loads).
import { onSighupWhenReady } from './early-signals';
import dotenv from 'dotenv';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createApp } from './app';
import { Config, ConfigError, loadConfig } from './config';
import { buildContainer } from './container';
import { migrateLatest } from './db/migration-source';
import { openDatabase } from './db/open-database';
import { loadOrCreateDevAdminToken } from './dev-admin-token';
import { createLogger } from './logger';
import { connectRedis } from './redis';
import { reloadSecrets } from './secrets-reload';
import { envFileProblem } from './lib/secret-file';
import { describeFailure } from './lib/describe-failure';
import { createHttpServer } from './http/http-classes';
import { observeClientErrors } from './http/client-errors';

/** Composition root: config -> database -> migrations -> services -> app -> listen -> graceful shutdown. */
async function main(): Promise<void> {
  dotenv.config({ quiet: true });
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\nThe service did not start. See .env.example for every setting.\n`);
    process.exit(1);
  }
  // The .env read above may hold every secret: in production it must be private like a secret file.
  const envProblem = config.env === 'production' ? envFileProblem(path.resolve('.env')) : null;
  if (envProblem) {
    process.stderr.write(`${envProblem}\nThe service did not start.\n`);
    process.exit(1);
  }
  const logger = createLogger(config);

  if (config.adminTokens.length === 0) {
    const dev = loadOrCreateDevAdminToken(config.dataDir);
    if (dev.created) {
      process.stdout.write(
        `\nNo ADMIN_API_TOKEN set: generated an admin token for development.\n\n  ${dev.token}\n\n` +
          `It is kept in ${dev.file} and will not be printed again. Set ADMIN_API_TOKEN to use your own.\n\n`,
      );
    } else {
      logger.info({ file: dev.file }, 'no ADMIN_API_TOKEN set: using the development admin token kept in this file');
    }
    config = Object.freeze({ ...config, adminTokens: [dev.token] });
  }

  const database = await openDatabase(config, logger);
  if (config.migrateOnStart) {
    const applied = await migrateLatest(database.db);
    logger.info({ applied }, applied.length ? 'migrations applied' : 'migrations current');
  }
  const redis = config.redisUrl ? connectRedis(config.redisUrl, logger) : null;
  // Shared limits from the first request when Redis is there; never wait long for it.
  if (redis) logger.info({ connected: await redis.ready }, 'Redis for shared rate limits');
  const container = buildContainer({ config, db: database.db, logger, redis });
  await container.start(database.url);
  const app = createApp(container);

  const server: Server = await new Promise((resolve, reject) => {
    // Requests and responses made with express's prototypes from the start (src/http/http-classes.ts).
    const s = createHttpServer(app);
    observeClientErrors(s, logger, container.metrics.clientErrors);
    s.listen(config.port, config.host, () => resolve(s));
    s.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;

  let stopping = false;
  const shutdown = async (reason: string, code = 0) => {
    if (stopping) return;
    stopping = true;
    logger.info({ reason }, 'shutting down: no new connections; finishing requests in flight');
    // Requests in flight finish; idle keep-alive sockets close now; stragglers are cut at the deadline.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // A keep-alive socket turns idle once its last response is sent: close it then, not at its timeout.
    const sweeper = setInterval(() => server.closeIdleConnections(), 100);
    server.closeIdleConnections();
    const deadline = setTimeout(() => {
      logger.warn('shutdown deadline reached; closing remaining connections');
      server.closeAllConnections();
    }, config.shutdownTimeoutSeconds * 1000);
    deadline.unref();
    await closed;
    clearInterval(sweeper);
    await container.stop();
    await redis?.close();
    await database.close();
    logger.info('stopped');
    logger.flush?.();
    process.exit(code);
  };
  // A leaked admin token, metrics token or webhook secret is replaced without a restart.
  const queued = onSighupWhenReady(() => void reloadSecrets(process.env, config, container, logger));
  if (queued) logger.info('a SIGHUP came during start-up: reloading the secrets now that the service is ready');
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('unhandledRejection', (err) => {
    logger.fatal({ err }, 'unhandled rejection');
    void shutdown('unhandledRejection', 1);
  });
  // Said only once SIGTERM and SIGINT are ours: whoever starts the service may stop it the moment it
  // reads this line, and a signal without a handler ends the process at once, without a shutdown.
  logger.info({ port, host: config.host, env: config.env }, `billing service listening on http://${config.host}:${port}`);
  logger.flush();
}

main().catch((err: unknown) => {
  process.stderr.write(`Failed to start: ${describeFailure(err)}\n`);
  process.exit(1);
});
