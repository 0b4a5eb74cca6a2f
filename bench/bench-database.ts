import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../src/db/embedded-postgres';
import { createKnex } from '../src/db/knex';

/**
 * A database of the bench's own, dropped afterwards: on BENCH_DATABASE_URL's (or TEST_DATABASE_URL's)
 * server, or on an embedded PostgreSQL started for the run and removed with it.
 */
export async function benchDatabase(tag: string): Promise<{ url: string; drop: () => Promise<void> }> {
  let base = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL;
  let pg: EmbeddedPostgresHandle | null = null;
  let dir = '';
  if (!base) {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), `billing-bench-${tag}-`));
    fs.chmodSync(dir, 0o755); // the embedded server may run as the postgres user
    pg = await startEmbeddedPostgres({ dataDir: dir, port: 0, persistent: false, database: 'billing_bench' });
    base = pg.url;
  }
  const name = `bench_${tag}_${process.pid}_${Date.now()}`;
  const admin = createKnex({ url: base, poolMax: 1 });
  await admin.raw('create database ??', [name]);
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      await admin.raw('drop database ?? with (force)', [name]);
      await admin.destroy();
      if (pg) {
        await pg.stop();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
