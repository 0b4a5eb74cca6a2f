import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { LicenseClaims as ClientClaims } from '../../packages/client';
import { openApiDocument, routeContracts, routeSpecs } from '../../src/app';
import { loadConfig } from '../../src/config';
import type { LicenseClaims as ServerClaims } from '../../src/modules/licenses/licenses-schemas';

/**
 * The license claims are described once, by the server's zod schema (licenses-schemas.ts). The SDK
 * reads its type from the types generated from the OpenAPI document, and its hand-written runtime
 * check must return that type: a change of the claims on the server side stops the client compiling.
 */

// Checked by tsc (npm run lint, npm test): the client's type is exactly the server's.
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const same: Equal<ClientClaims, ServerClaims> = true;

const root = path.resolve(__dirname, '../..');
const clientDir = path.join(root, 'packages/client');
let dir: string;
let doc: { components: { schemas: Record<string, { properties: Record<string, unknown>; required: string[] }> } };

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-claims-'));
  const config = loadConfig({ NODE_ENV: 'test', ADMIN_API_TOKEN: 'x'.repeat(64) });
  doc = JSON.parse(JSON.stringify(openApiDocument(routeContracts(routeSpecs(config)))));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The client package's sources compiled against the types generated from `document`: tsc's complaints, or ''. */
function compileClient(name: string, document: object): string {
  const pkg = path.join(dir, name);
  fs.mkdirSync(pkg);
  for (const f of fs.readdirSync(clientDir)) if (f.endsWith('.ts') || f === 'tsconfig.json') fs.copyFileSync(path.join(clientDir, f), path.join(pkg, f));
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(pkg, 'node_modules'), 'dir');
  fs.writeFileSync(path.join(pkg, 'openapi.json'), JSON.stringify(document));
  const node = (args: string[]) => execFileSync(process.execPath, args, { cwd: pkg, stdio: 'pipe' });
  node([path.join(root, 'node_modules/openapi-typescript/bin/cli.js'), 'openapi.json', '-o', 'api-types.ts']);
  try {
    node([path.join(root, 'node_modules/typescript/bin/tsc'), '--noEmit', '-p', 'tsconfig.json']);
    return '';
  } catch (err) {
    return String((err as { stdout?: Buffer }).stdout ?? err);
  }
}

/** The document with the claims' schema changed by `change`, as a server change would publish it. */
function withClaims(change: (claims: { properties: Record<string, unknown>; required: string[] }) => void) {
  const copy = JSON.parse(JSON.stringify(doc)) as typeof doc;
  change(copy.components.schemas.LicenseClaims!);
  return copy;
}

describe('the client SDK against the license claims the server publishes', () => {
  test('when the document is read, then the claims are one named component, the schema every route answering a license uses', () => {
    expect(same).toBe(true);
    const claims = doc.components.schemas.LicenseClaims!;
    expect(Object.keys(claims.properties)).toEqual(expect.arrayContaining(['iss', 'sub', 'exp', 'entitlements', 'status', 'instance']));
    expect(JSON.stringify(doc)).not.toContain('"seats"');
    const refs = JSON.stringify(doc).match(/#\/components\/schemas\/LicenseClaims/g) ?? [];
    // The two license routes, and the two usage-bundle uploads (their fresh license's claims, or null).
    expect(refs).toHaveLength(4);
  });

  test('when the client is compiled against the document as it is, then it compiles (control)', () => {
    expect(compileClient('same', doc)).toBe('');
  }, 120_000);

  test('when the server adds a claim, then the client no longer compiles, and its license check is what fails', () => {
    const out = compileClient(
      'added',
      withClaims((c) => {
        c.properties.tier = { type: 'string' };
        c.required.push('tier');
      }),
    );
    expect(out).toMatch(/license-claims\.ts\(\d+,\d+\): error TS\d+:.*tier/);
  }, 120_000);

  test('when the server drops a claim, then the client no longer compiles', () => {
    const out = compileClient(
      'dropped',
      withClaims((c) => {
        delete c.properties.grace_until;
        c.required = c.required.filter((f) => f !== 'grace_until');
      }),
    );
    expect(out).toMatch(/license-claims\.ts\(\d+,\d+\): error TS\d+:.*grace_until/);
  }, 120_000);
});
