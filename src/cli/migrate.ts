import dotenv from 'dotenv';
import { loadConfig } from '../config';
import { migrateLatest, migrationConfig, pendingMigrations } from '../db/migration-source';
import { openDatabase } from '../db/open-database';
import { createLogger } from '../logger';

/** npm run migrate [-- latest | down | status] */
async function main(): Promise<void> {
  dotenv.config({ quiet: true });
  const command = process.argv[2] ?? 'latest';
  const config = loadConfig();
  const logger = createLogger({ ...config, logPretty: false, logLevel: 'warn' });
  const { db, close } = await openDatabase(config, logger);
  try {
    if (command === 'latest') {
      const applied = await migrateLatest(db);
      console.log(applied.length ? `Applied: ${applied.join(', ')}` : 'Already up to date');
    } else if (command === 'down') {
      const [, undone] = (await db.migrate.down(migrationConfig())) as [number, string[]];
      console.log(undone.length ? `Rolled back: ${undone.join(', ')}` : 'Nothing to roll back');
    } else if (command === 'status') {
      const pending = await pendingMigrations(db);
      console.log(pending.length ? `Pending: ${pending.join(', ')}` : 'Up to date');
    } else {
      throw new Error(`unknown command "${command}" (use latest, down or status)`);
    }
  } finally {
    await close();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
