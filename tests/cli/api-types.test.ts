import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * packages/client/api-types.ts is generated from the service's OpenAPI document (npm run client:types).
 * The admin client and the SDK type every request and answer with it, so a route that changes
 * without the file being regenerated fails here rather than drifting silently.
 */
describe('packages/client/api-types.ts', () => {
  const root = path.resolve(__dirname, '../..');
  let dir: string;
  beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-api-types-'))));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('when the document is generated again, then the committed types equal what openapi-typescript makes of it', () => {
    const doc = path.join(dir, 'openapi.json');
    const out = path.join(dir, 'api-types.ts');
    execFileSync(process.execPath, [path.join(root, 'node_modules/tsx/dist/cli.mjs'), path.join(root, 'src/cli/openapi.ts'), doc], {
      cwd: root,
      stdio: 'pipe',
    });
    execFileSync(process.execPath, [path.join(root, 'node_modules/openapi-typescript/bin/cli.js'), doc, '-o', out], { cwd: root, stdio: 'pipe' });
    const committed = fs.readFileSync(path.join(root, 'packages/client/api-types.ts'), 'utf8');
    if (committed !== fs.readFileSync(out, 'utf8'))
      throw new Error('packages/client/api-types.ts is out of date: run `npm run client:types` and commit the result');
  }, 60_000);
});
