import fs from 'node:fs';
import path from 'node:path';
import { openApiDocument, routeContracts, routeSpecs } from '../app';
import { loadConfig } from '../config';

/**
 * npm run openapi [-- <file>]: writes the OpenAPI document of the default configuration. It is built
 * from the route contracts alone: no container, no database URL, nothing connects.
 */
function main(): void {
  const config = loadConfig({ NODE_ENV: 'test', ADMIN_API_TOKEN: 'x'.repeat(64) });
  const out = JSON.stringify(openApiDocument(routeContracts(routeSpecs(config))), null, 2);
  if (process.argv[2]) {
    fs.mkdirSync(path.dirname(process.argv[2]), { recursive: true });
    fs.writeFileSync(process.argv[2], `${out}\n`);
  } else process.stdout.write(`${out}\n`);
}

main();
