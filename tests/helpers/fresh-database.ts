import { createKnex } from '../../src/db/knex';
import { migrateLatest } from '../../src/db/migration-source';
import { createTestApp, testDatabaseUrl, type TestApp } from './test-app';

/**
 * A test app on a database of its own, migrated: for tests that act on every customer, which in
 * the shared test database would reach the rows of every other test file.
 */
export async function createIsolatedTestApp(tag: string, env: Record<string, string> = {}, opts: { now?: () => number } = {}) {
  const name = `${tag}_${Date.now()}_${process.pid}`;
  const admin = createKnex({ url: testDatabaseUrl(), poolMax: 1 });
  await admin.raw('create database ??', [name]);
  const url = new URL(testDatabaseUrl());
  url.pathname = `/${name}`;
  const t: TestApp = await createTestApp(env, { ...opts, databaseUrl: url.toString() });
  await migrateLatest(t.db);
  return {
    t,
    url: url.toString(),
    async close() {
      await t.close();
      await admin.raw('drop database ?? with (force)', [name]);
      await admin.destroy();
    },
  };
}
