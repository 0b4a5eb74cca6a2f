import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../src/config';

const problems = (env: Record<string, string>) => {
  try {
    loadConfig({ NODE_ENV: 'test', ...env });
    return [];
  } catch (err) {
    return (err as ConfigError).problems;
  }
};

describe('usage retention settings', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'archive-dir-'));
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  test('when nothing is set, then 13 months are kept, there is no archive folder, and dropping without one is off', () => {
    expect(loadConfig({ NODE_ENV: 'test' }).usage).toMatchObject({ retentionMonths: 13, archiveDir: undefined, retentionWithoutArchive: false });
  });

  test('when USAGE_RETENTION_MONTHS is below 2 or not a whole number, then the start is refused; 2 is taken', () => {
    expect(problems({ USAGE_RETENTION_MONTHS: '1' })).toEqual([expect.stringMatching(/^USAGE_RETENTION_MONTHS: /)]);
    expect(problems({ USAGE_RETENTION_MONTHS: '3.5' })).toEqual([expect.stringMatching(/^USAGE_RETENTION_MONTHS: /)]);
    expect(loadConfig({ NODE_ENV: 'test', USAGE_RETENTION_MONTHS: '2' }).usage.retentionMonths).toBe(2);
  });

  test('when USAGE_ARCHIVE_DIR is writable by group or others, then the start is refused with the fix; at 0700 it is taken, as an absolute path', () => {
    const open = path.join(root, 'open');
    fs.mkdirSync(open);
    fs.chmodSync(open, 0o777);
    expect(problems({ USAGE_ARCHIVE_DIR: open })).toEqual([
      'USAGE_ARCHIVE_DIR: is writable by group or others (mode 0777): another user could replace an archive; chmod 700 the folder',
    ]);
    fs.chmodSync(open, 0o775);
    expect(problems({ USAGE_ARCHIVE_DIR: open })).toHaveLength(1);
    fs.chmodSync(open, 0o700);
    expect(loadConfig({ NODE_ENV: 'test', USAGE_ARCHIVE_DIR: path.relative(process.cwd(), open) }).usage.archiveDir).toBe(open);
  });

  test('when USAGE_ARCHIVE_DIR is missing or a file, then the start is refused, naming no path', () => {
    const file = path.join(root, 'a-file');
    fs.writeFileSync(file, '');
    expect(problems({ USAGE_ARCHIVE_DIR: path.join(root, 'missing') })).toEqual([
      expect.stringMatching(/^USAGE_ARCHIVE_DIR: the folder cannot be used \(ENOENT\)/),
    ]);
    expect(problems({ USAGE_ARCHIVE_DIR: file })).toEqual(['USAGE_ARCHIVE_DIR: is not a folder']);
  });

  test('when USAGE_RETENTION_WITHOUT_ARCHIVE is on, then it is true; anything but on/off (or true/false) is refused', () => {
    expect(loadConfig({ NODE_ENV: 'test', USAGE_RETENTION_WITHOUT_ARCHIVE: 'on' }).usage.retentionWithoutArchive).toBe(true);
    expect(loadConfig({ NODE_ENV: 'test', USAGE_RETENTION_WITHOUT_ARCHIVE: 'off' }).usage.retentionWithoutArchive).toBe(false);
    expect(problems({ USAGE_RETENTION_WITHOUT_ARCHIVE: 'maybe' })).toHaveLength(1);
  });
});
