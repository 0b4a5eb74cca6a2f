import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';

/** migrations/ at the project root, from both src/db (tsx, jest) and dist/src/db (compiled). */
export const MIGRATIONS_DIR = path.resolve(__dirname, '..', '..', 'migrations');

/**
 * Migration names are stored without their extension, so the same database can be
 * migrated from the TypeScript sources (dev, tests) and from the compiled build.
 */
/** The migration files never change while the process runs: read the folder once (not on every /ready). */
const listed = new Map<string, string[]>();

export class ProjectMigrationSource implements Knex.MigrationSource<string> {
  constructor(private readonly dir = MIGRATIONS_DIR) {}

  getMigrations(): Promise<string[]> {
    let names = listed.get(this.dir);
    if (!names) {
      const files = fs
        .readdirSync(this.dir)
        .filter((f) => /\.(ts|js)$/.test(f) && !f.endsWith('.d.ts'))
        .map((f) => f.replace(/\.(ts|js)$/, ''));
      names = [...new Set(files)].sort();
      listed.set(this.dir, names);
    }
    return Promise.resolve([...names]);
  }

  getMigrationName(name: string): string {
    return name;
  }

  getMigration(name: string): Promise<Knex.Migration> {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return Promise.resolve(require(path.join(this.dir, name)) as Knex.Migration);
  }
}

export const migrationConfig = (): Knex.MigratorConfig => ({
  migrationSource: new ProjectMigrationSource(),
  tableName: 'knex_migrations',
});

export async function migrateLatest(db: Knex): Promise<string[]> {
  const [, applied] = (await db.migrate.latest(migrationConfig())) as [number, string[]];
  return applied;
}

export async function pendingMigrations(db: Knex): Promise<string[]> {
  // With a custom source, knex lists pending migrations as the source's own items (names here).
  const [, pending] = (await db.migrate.list(migrationConfig())) as [unknown[], (string | { file: string })[]];
  return pending.map((p) => (typeof p === 'string' ? p : p.file));
}
