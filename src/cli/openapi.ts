import fs from 'node:fs';
import path from 'node:path';
import { routeTable } from '../app';
import { loadConfig } from '../config';
import { buildContainer } from '../container';
import { createKnex } from '../db/knex';
import { buildOpenApi } from '../http/openapi';
import { createLogger } from '../logger';

/** npm run openapi [-- <file>]: writes the OpenAPI document (no database needed: nothing connects). */
async function main(): Promise<void> {
  const config = loadConfig({ NODE_ENV: 'test', DATABASE_URL: 'postgres://unused@127.0.0.1:1/unused', ADMIN_API_TOKEN: 'x'.repeat(64) });
  const db = createKnex({ url: config.databaseUrl!, poolMax: 1 });
  const c = buildContainer({ config, db, logger: createLogger({ logLevel: 'silent', logPretty: false }) });
  const spec = buildOpenApi(routeTable(c), process.env.npm_package_version ?? '0.1.0');
  const out = JSON.stringify(spec, null, 2);
  if (process.argv[2]) {
    fs.mkdirSync(path.dirname(process.argv[2]), { recursive: true });
    fs.writeFileSync(process.argv[2], `${out}\n`);
  } else process.stdout.write(`${out}\n`);
  await db.destroy();
}

void main();
