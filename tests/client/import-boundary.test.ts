import fs from 'node:fs';
import path from 'node:path';

/**
 * packages/client is what customer instances install on its own (@billing/client): nothing in it may
 * import the server side, or any package but jose and Node's own modules. The other way round, the
 * service reaches the package only from the admin CLI, through its index or its request loop (http).
 */
const root = path.resolve(__dirname, '../..');
const dir = path.join(root, 'packages/client');
const sources = fs.readdirSync(dir).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));

function tsFiles(folder: string): string[] {
  return fs.readdirSync(folder, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(folder, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' || e.name === 'dist' ? [] : tsFiles(full);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [full] : [];
  });
}

function specifiers(text: string): string[] {
  const found: string[] = [];
  const patterns = [
    /\bfrom\s+['"]([^'"]+)['"]/g,
    /\bimport\s+['"]([^'"]+)['"]/g,
    /\brequire\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const p of patterns) for (const m of text.matchAll(p)) found.push(m[1]!);
  return found;
}

const allowed = (s: string) => s === 'jose' || s.startsWith('node:') || (s.startsWith('./') && !s.includes('..'));

describe('packages/client imports', () => {
  test('when the client sources are read, then there are some (the check below is not vacuous)', () => {
    expect(sources).toEqual(expect.arrayContaining(['billing-client.ts', 'http.ts', 'license-verifier.ts']));
  });

  test.each(sources)('when %s is read, then it imports only jose, node:* and files of packages/client', (file) => {
    const bad = specifiers(fs.readFileSync(path.join(dir, file), 'utf8')).filter((s) => !allowed(s));
    expect(bad).toEqual([]);
  });

  test('when the package manifest is read, then its only runtime dependency is jose', () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { dependencies?: object; peerDependencies?: object };
    expect(Object.keys(manifest.dependencies ?? {})).toEqual(['jose']);
    expect(manifest.peerDependencies).toBeUndefined();
  });

  test('when the manifest is read, then it names its build through exports only, so that importing the packages/client folder in this repository gets the sources, never a stale build', () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as Record<string, unknown>;
    expect(manifest.main).toBeUndefined();
    expect(manifest.types).toBeUndefined();
    expect(require.resolve('../../packages/client')).toBe(path.join(dir, 'index.ts'));
  });

  test('when the service side is read, then only the admin CLI imports the package, and only its index or its http module', () => {
    const uses = tsFiles(path.join(root, 'src')).flatMap((file) =>
      specifiers(fs.readFileSync(file, 'utf8'))
        .filter((s) => s.startsWith('.') && (path.resolve(path.dirname(file), s) + path.sep).startsWith(dir + path.sep))
        .map((s) => [path.relative(root, file), path.relative(root, path.resolve(path.dirname(file), s))] as const),
    );
    // Not vacuous: the admin client is built on the package's request loop.
    expect(uses).toContainEqual(['src/cli/admin/admin-client.ts', 'packages/client/http']);
    expect(uses.filter(([file, target]) => !file.startsWith('src/cli/admin/') || !['packages/client', 'packages/client/http'].includes(target))).toEqual([]);
  });

  test("when the package is read, then the operator's admin client is not in it (it lives with the admin CLI)", () => {
    expect(fs.existsSync(path.join(root, 'src/cli/admin/admin-client.ts'))).toBe(true);
    const mentions = sources.filter((f) => f !== 'api-types.ts' && /AdminClient|admin-client/.test(fs.readFileSync(path.join(dir, f), 'utf8')));
    expect(mentions).toEqual([]);
  });
});
