import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Server } from 'node:http';
import { Writable } from 'node:stream';
import type { Express } from 'express';
import type { Knex } from 'knex';
import { createApp } from '../../src/app';
import { loadConfig } from '../../src/config';
import { buildContainer, Container } from '../../src/container';
import { createKnex } from '../../src/db/knex';
import { createHttpServer } from '../../src/http/http-classes';
import { createLogger } from '../../src/logger';
import type { RedisCommander } from '../../src/middleware/rate-limits';

export interface TestApp {
  /**
   * The HTTP server production runs (createHttpServer, as src/server.ts starts it), not yet
   * listening: `request(t.app)` listens it on a free port of 127.0.0.1 while its requests are in
   * flight (supertest's way with a server it is given), and a test that needs an address of its
   * own calls `t.app.listen(0, '127.0.0.1')`. close() closes it if it is still listening.
   */
  app: Server;
  /** The Express app the server answers with. */
  express: Express;
  c: Container;
  db: Knex;
  adminToken: string;
  /** Every log line the app wrote, as written (after redaction). */
  logs: string[];
  bcryptCalls(): number;
  /** The limiters that refused a request, in order. */
  limited: string[];
  /** Errors answered with a code the route does not declare: close() fails the suite if any. */
  undeclared: string[];
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
  opts: { now?: () => number; databaseUrl?: string; redis?: RedisCommander | null } = {},
): Promise<TestApp> {
  const databaseUrl = opts.databaseUrl ?? testDatabaseUrl();
  const adminToken = newAdminToken();
  // A folder of its own for usage archives (removed on close), so the archive routes can answer.
  const archiveDir = env.USAGE_ARCHIVE_DIR === undefined ? fs.mkdtempSync(path.join(os.tmpdir(), 'test-usage-archives-')) : null;
  const settings = {
    NODE_ENV: 'test',
    DATABASE_URL: databaseUrl,
    ADMIN_API_TOKEN: adminToken,
    BCRYPT_COST: '4',
    LOG_LEVEL: 'info',
    // Limits are tested on their own; elsewhere they stay out of the way.
    RATE_LIMIT_API: '1000000/1m',
    RATE_LIMIT_USAGE: '1000000/1m',
    RATE_LIMIT_WEBHOOKS: '1000000/1m',
    RATE_LIMIT_ADMIN: '1000000/1m',
    RATE_LIMIT_AUTH_FAILURES: '1000000/1m',
    ...(archiveDir ? { USAGE_ARCHIVE_DIR: archiveDir } : {}),
    ...env,
  };
  const config = loadConfig(settings);
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
  const limited: string[] = [];
  const c = buildContainer({
    config,
    db,
    logger,
    now: opts.now,
    onBcrypt: () => void bcrypt++,
    redis: opts.redis ?? null,
    onLimited: (n) => void limited.push(n),
    env: settings,
  });
  const undeclared: string[] = [];
  const app = createApp(c, { onUndeclaredError: (route, code) => void undeclared.push(`${route} answered ${code}`) });
  const server = createHttpServer(app);
  return {
    app: server,
    express: app,
    c,
    db,
    adminToken,
    logs,
    bcryptCalls: () => bcrypt,
    limited,
    undeclared,
    async close() {
      if (server.listening) {
        const closed = new Promise((resolve) => server.close(resolve));
        server.closeAllConnections();
        await closed;
      }
      await c.stop();
      await db.destroy();
      if (archiveDir) fs.rmSync(archiveDir, { recursive: true, force: true });
      // The OpenAPI document lists each route's error codes: an answer outside them is a lie in it.
      if (undeclared.length) throw new Error(`errors answered but not declared by their route:\n${[...new Set(undeclared)].join('\n')}`);
    },
  };
}
