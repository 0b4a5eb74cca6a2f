import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { register } from 'tsx/cjs/api';
import { EmbeddedPostgresHandle, startEmbeddedPostgres } from '../src/db/embedded-postgres';
import { createKnex } from '../src/db/knex';
import { migrateLatest } from '../src/db/migration-source';

declare global {
  var __embeddedPostgres: { handle: EmbeddedPostgresHandle; dir: string } | undefined;
}

/**
 * TEST_DATABASE_URL when set (CI also runs against the machine's PostgreSQL);
 * otherwise one embedded PostgreSQL for the whole run, in a temporary folder.
 * Migrations run once here, before any worker starts.
 */
export default async function globalSetup(): Promise<void> {
  // The migration files are TypeScript; jest's transform does not cover code run from here.
  const unregister = register();
  try {
    if (!process.env.TEST_DATABASE_URL) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-test-pg-'));
      fs.chmodSync(dir, 0o755);
      const handle = await startEmbeddedPostgres({ dataDir: dir, port: 0, persistent: false, database: 'billing_test' });
      globalThis.__embeddedPostgres = { handle, dir };
      process.env.TEST_DATABASE_URL = handle.url;
      process.stdout.write(`\nTests use an embedded PostgreSQL (${new URL(handle.url).port}).\n`);
    } else {
      const u = new URL(process.env.TEST_DATABASE_URL);
      process.stdout.write(`\nTests use TEST_DATABASE_URL (${u.host}${u.pathname}).\n`);
    }
    const db = createKnex({ url: process.env.TEST_DATABASE_URL, poolMax: 2 });
    try {
      await migrateLatest(db);
    } finally {
      await db.destroy();
    }
  } finally {
    unregister();
  }
}
