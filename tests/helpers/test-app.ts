import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type { Express } from 'express';
import type { Knex } from 'knex';
import { createApp } from '../../src/app';
import { loadConfig } from '../../src/config';
import { buildContainer, Container } from '../../src/container';
import { createKnex } from '../../src/db/knex';
import { createLogger } from '../../src/logger';

export interface TestApp {
  app: Express;
  c: Container;
  db: Knex;
  adminToken: string;
  /** Every log line the app wrote, as written (after redaction). */
  logs: string[];
  bcryptCalls(): number;
  close(): Promise<void>;
}

export function testDatabaseUrl(): string {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) throw new Error('TEST_DATABASE_URL is not set: the jest global setup sets it');
  return url;
}

export const newAdminToken = () => randomBytes(32).toString('hex');

/** The real app and services on the test database, with a low bcrypt cost and captured logs. */
export async function createTestApp(
  env: Record<string, string> = {},
  opts: { now?: () => number; databaseUrl?: string } = {},
): Promise<TestApp> {
  const databaseUrl = opts.databaseUrl ?? testDatabaseUrl();
  const adminToken = newAdminToken();
  const config = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: databaseUrl,
    ADMIN_API_TOKEN: adminToken,
    BCRYPT_COST: '4',
    LOG_LEVEL: 'info',
    ...env,
  });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(chunk.toString('utf8'));
      cb();
    },
  });
  const logger = createLogger(config, sink);
  const db = createKnex({ url: databaseUrl, poolMax: 5, logger });
  let bcrypt = 0;
  const c = buildContainer({ config, db, logger, now: opts.now, onBcrypt: () => void bcrypt++ });
  return {
    app: createApp(c),
    c,
    db,
    adminToken,
    logs,
    bcryptCalls: () => bcrypt,
    async close() {
      await c.stop();
      await db.destroy();
    },
  };
}
