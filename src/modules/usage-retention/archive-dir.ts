import fs from 'node:fs';

/**
 * USAGE_ARCHIVE_DIR must be a folder this process can write and no one else can: another local user
 * able to write there could replace an archive (and its manifest) before it is restored. The rule the
 * client package applies to its private folders (packages/client/private-fs.ts). null when it is fine.
 * The problem never shows the path (settings are never echoed; a mistyped secret may land here).
 */
export function archiveDirProblem(dir: string): string | null {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (err) {
    return `the folder cannot be used (${(err as NodeJS.ErrnoException).code ?? 'error'}): create it first, readable and writable by the service's user only (mkdir -m 700)`;
  }
  if (!st.isDirectory()) return 'is not a folder';
  try {
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
  } catch {
    return "is not writable by the service's user";
  }
  if (process.platform !== 'win32' && (st.mode & 0o022) !== 0) {
    return `is writable by group or others (mode 0${(st.mode & 0o777).toString(8)}): another user could replace an archive; chmod 700 the folder`;
  }
  return null;
}
