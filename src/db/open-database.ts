import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { Config } from '../config';
import { startEmbeddedPostgres } from './embedded-postgres';
import { createKnex } from './knex';

export interface OpenDatabase {
  url: string;
  db: Knex;
  embedded: boolean;
  /** Closes the pool, then stops the embedded server if we started one. */
  close: () => Promise<void>;
}

/** DATABASE_URL when set; otherwise (never in production) an embedded PostgreSQL under DATA_DIR. */
export async function openDatabase(config: Config, logger: Logger): Promise<OpenDatabase> {
  let url = config.databaseUrl;
  let stopEmbedded: (() => Promise<void>) | null = null;
  if (!url) {
    const started = Date.now();
    const pg = await startEmbeddedPostgres({
      dataDir: config.dataDir,
      port: config.embeddedPgPort,
      persistent: true,
      onLog: (m) => logger.trace({ postgres: m.trim() }, 'embedded postgres'),
    });
    if (pg.leftover) logger.warn({ pid: pg.leftover.pid }, pg.leftover.message);
    url = pg.url;
    stopEmbedded = pg.stop;
    logger.info({ dataDir: config.dataDir, ms: Date.now() - started }, 'embedded PostgreSQL started (no DATABASE_URL set)');
  }
  const db = createKnex({ url, poolMax: config.dbPoolMax, logger });
  return {
    url,
    db,
    embedded: stopEmbedded !== null,
    async close() {
      await db.destroy();
      if (stopEmbedded) {
        await stopEmbedded();
        logger.info('embedded PostgreSQL stopped');
      }
    },
  };
}
