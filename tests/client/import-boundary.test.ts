import fs from 'node:fs';
import path from 'node:path';

/**
 * src/client is what customer instances install on its own (@billing/client): nothing in it may
 * import the server side, or any package but jose and Node's own modules.
 */
const dir = path.resolve(__dirname, '../../src/client');
const sources = fs.readdirSync(dir).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));

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

describe('src/client imports', () => {
  test('when the client sources are read, then there are some (the check below is not vacuous)', () => {
    expect(sources).toEqual(expect.arrayContaining(['billing-client.ts', 'http.ts', 'license-verifier.ts']));
  });

  test.each(sources)('when %s is read, then it imports only jose, node:* and files of src/client', (file) => {
    const bad = specifiers(fs.readFileSync(path.join(dir, file), 'utf8')).filter((s) => !allowed(s));
    expect(bad).toEqual([]);
  });

  test('when the package manifest is read, then its only runtime dependency is jose', () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { dependencies?: object; peerDependencies?: object };
    expect(Object.keys(manifest.dependencies ?? {})).toEqual(['jose']);
    expect(manifest.peerDependencies).toBeUndefined();
  });

  test('when the manifest is read, then it names its build through exports only, so that importing the src/client folder in this repository gets the sources, never a stale build', () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as Record<string, unknown>;
    expect(manifest.main).toBeUndefined();
    expect(manifest.types).toBeUndefined();
    expect(require.resolve('../../src/client')).toBe(path.join(dir, 'index.ts'));
  });
});
