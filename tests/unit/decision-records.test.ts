/**
 * docs/decisions/: each departure from the stock stack says on which versions it was measured
 * (`**Measured on**: node 20.20.2, express 5.3.0, ...`). When an installed major version differs,
 * the gain is unknown: this test fails until the record is measured again and its line updated
 * (or the departure deleted).
 */
import fs from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');
const DIR = path.join(ROOT, 'docs', 'decisions');

/** The installed version of a package (as node_modules holds it), or of node itself. */
function installed(name: string): string | undefined {
  if (name === 'node') return process.versions.node;
  const file = path.join(ROOT, 'node_modules', name, 'package.json');
  if (!fs.existsSync(file)) return undefined;
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version;
}

const major = (version: string) => Number(/^(\d+)\./.exec(version)?.[1]);

/** The `**Measured on**:` line of a record as name/version pairs. */
function measuredOn(text: string): { name: string; version: string }[] {
  const line = /^\*\*Measured on\*\*:\s*(.+)$/m.exec(text)?.[1];
  if (!line) return [];
  return [...line.matchAll(/(@?[a-z0-9][a-z0-9./_-]*)\s+v?(\d+\.\d+\.\d+)/gi)].map((m) => ({ name: m[1]!, version: m[2]! }));
}

/** What differs between a record's versions and the installed ones: one line each. */
function stale(pins: { name: string; version: string }[]): string[] {
  return pins.flatMap(({ name, version }) => {
    const now = installed(name);
    if (now === undefined) return [`${name} is not installed`];
    return major(now) === major(version) ? [] : [`${name} measured on ${version}, installed ${now}`];
  });
}

const records = fs
  .readdirSync(DIR)
  .filter((f) => f.endsWith('.md') && f !== 'README.md')
  .sort();

test('the decisions folder has its records and an index that lists each one', () => {
  expect(records.length).toBeGreaterThanOrEqual(9);
  const index = fs.readFileSync(path.join(DIR, 'README.md'), 'utf8');
  for (const f of records) expect(index).toContain(`(${f})`);
});

describe.each(records)('%s', (file) => {
  const text = fs.readFileSync(path.join(DIR, file), 'utf8');

  test('says what it replaces, what it gains with the command that measures it, and when to delete it', () => {
    expect(text).toMatch(/^\*\*What (it|they) replace[sd]?\*\*:/m);
    expect(text).toMatch(/^\*\*Measured\*\*:/m);
    expect(text).toMatch(/`npm run [a-z:]+|`npx jest /);
    expect(text).toMatch(/^\*\*Delete when\*\*:/m);
  });

  test('was measured on the major versions installed now', () => {
    const pins = measuredOn(text);
    expect(pins.map((p) => p.name)).toContain('node');
    expect(stale(pins)).toEqual([]);
  });
});

test('when a pinned library’s major version differs from the record’s, then the record is reported stale', () => {
  const express = installed('express')!;
  const bumped = `${major(express) + 1}.0.0`;
  expect(stale(measuredOn(`**Measured on**: node ${process.versions.node}, express ${bumped}`))).toEqual([
    `express measured on ${bumped}, installed ${express}`,
  ]);
  // Control: the same line with the installed major is not.
  expect(stale(measuredOn(`**Measured on**: node ${process.versions.node}, express ${express}`))).toEqual([]);
  expect(stale(measuredOn('**Measured on**: node 19.9.0'))[0]).toMatch(/^node measured on 19\.9\.0/);
});
