import path from 'node:path';
import madge from 'madge';

/**
 * The import graph of the service and the client package, as madge reads it (type-only imports
 * included: a circle of types is still a circle a reader has to untangle). The rules are the ones
 * docs/ARCHITECTURE.md states.
 */
const root = path.resolve(__dirname, '../..');
let graph: Record<string, string[]>;
let circles: string[][];
let skipped: string[];

beforeAll(async () => {
  const m = await madge(['src', 'packages'], {
    baseDir: root,
    fileExtensions: ['ts'],
    tsConfig: path.join(root, 'tsconfig.json'),
    excludeRegExp: [/node_modules/, /\/dist\//],
  });
  graph = m.obj();
  circles = m.circular();
  skipped = m.warnings().skipped;
}, 60_000);

const moduleOf = (file: string) => /^src\/modules\/([^/]+)\//.exec(file)?.[1] ?? null;

/** Every file `file` reaches through its imports. */
function reach(file: string, seen = new Set<string>()): Set<string> {
  for (const dep of graph[file] ?? []) if (!seen.has(dep)) reach(dep, seen.add(dep));
  return seen;
}

describe('the import graph', () => {
  test('when it is read, then it holds the service, its modules and the client package, and only npm packages went unresolved', () => {
    expect(Object.keys(graph).length).toBeGreaterThan(100);
    expect(graph['src/container.ts']).toEqual(expect.arrayContaining(['src/modules/plans/plans-service.ts', 'src/modules/plans/plans-repository.ts']));
    expect(Object.keys(graph)).toContain('packages/client/license-claims.ts');
    // An import madge cannot resolve is an edge it cannot see: only installed packages it does not follow may be missing.
    expect(skipped.filter((s) => s.startsWith('.') || s.includes('/src/'))).toEqual([]);
  });

  test('when it is searched for circles, then there is none', () => {
    expect(circles).toEqual([]);
  });

  test("when a module's files are read, then none imports another module's repository (only the composition root, src/container.ts, builds them)", () => {
    const crossings = Object.entries(graph).flatMap(([file, deps]) =>
      deps
        .filter((dep) => /-repository\.ts$/.test(dep) && moduleOf(dep) !== null && moduleOf(dep) !== moduleOf(file) && file !== 'src/container.ts')
        .map((dep) => `${file} -> ${dep}`),
    );
    expect(crossings).toEqual([]);
    // Not vacuous: the rule sees the repositories a module does import, its own.
    expect(graph['src/modules/licenses/licenses-service.ts']).toContain('src/modules/licenses/activations-repository.ts');
  });

  test("when db/tables.ts is read, then it reaches no module's schemas, service or repository (the plan types have their own file)", () => {
    const reached = [...reach('src/db/tables.ts')];
    expect(reached).toContain('src/modules/plans/plan-types.ts');
    expect(reached.filter((f) => moduleOf(f) !== null && /-(schemas|service|repository)\.ts$/.test(f))).toEqual([]);
  });
});
