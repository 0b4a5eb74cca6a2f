import { execFile } from 'node:child_process';
import path from 'node:path';
import dotenv from 'dotenv';
import { createClient } from 'redis';
import { createKnex } from '../db/knex';
import { pendingMigrations } from '../db/migration-source';
import { envFileProblem } from '../lib/secret-file';
import { runChecks } from './preflight-checks';

/** npm run preflight [-- --instances N]: checks a production configuration; exit 1 on any failure. */
async function main(): Promise<void> {
  dotenv.config({ quiet: true });
  const i = process.argv.indexOf('--instances');
  const instances = i > 0 ? Number(process.argv[i + 1]) || 1 : 1;
  const results = await runChecks(
    process.env,
    {
      async migrations(config) {
        const db = createKnex({ url: config.databaseUrl!, poolMax: 1 });
        try {
          return { pending: await pendingMigrations(db) };
        } catch (err) {
          return { error: err instanceof Error ? err.message : String(err) };
        } finally {
          await db.destroy();
        }
      },
      async redis(url) {
        const client = createClient({ url, socket: { connectTimeout: 2000, reconnectStrategy: false } });
        client.on('error', () => undefined);
        try {
          await client.connect();
          await client.ping();
          return null;
        } catch (err) {
          return err instanceof Error ? err.message : String(err);
        } finally {
          await client.close().catch(() => undefined);
        }
      },
      audit: () =>
        new Promise((resolve) => {
          execFile('npm', ['audit', '--omit=dev', '--json'], { timeout: 60_000 }, (err, stdout) => {
            try {
              const out = JSON.parse(stdout) as { metadata?: { vulnerabilities: Record<string, number> }; message?: string };
              if (!out.metadata) return resolve({ error: out.message ?? 'no result from the registry' });
              const v = out.metadata.vulnerabilities;
              resolve({ high: (v.high ?? 0) + (v.critical ?? 0) });
            } catch {
              resolve({ error: err ? err.message.split('\n')[0]! : 'unreadable npm audit output' });
            }
          });
        }),
    },
    instances,
  );
  const envProblem = envFileProblem(path.resolve('.env'));
  results.push({
    name: 'secret files readable by their owner only',
    ok: envProblem === null,
    detail: envProblem ?? 'the *_FILE settings are checked with the configuration; .env is private or absent',
  });
  for (const r of results) console.log(`${r.ok ? 'PASS' : 'FAIL'}  ${r.name}: ${r.detail}`);
  const failed = results.filter((r) => !r.ok).length;
  console.log(failed ? `\n${failed} check(s) failed.` : '\nAll checks passed.');
  process.exit(failed ? 1 : 0);
}

void main();
