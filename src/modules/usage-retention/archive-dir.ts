import fs from 'node:fs';

/**
 * USAGE_ARCHIVE_DIR must be a folder this process can write and no one else can: another local user
 * able to write there could replace an archive (and its manifest) before it is restored. The rule the
 * client package applies to its private folders (packages/client/private-fs.ts). null when it is fine.
 */
export function archiveDirProblem(dir: string): string | null {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (err) {
    return `cannot use ${dir} (${(err as NodeJS.ErrnoException).code ?? 'error'}): create it first (mkdir -m 700 ${dir})`;
  }
  if (!st.isDirectory()) return `${dir} is not a folder`;
  try {
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
  } catch {
    return `${dir} is not writable by the service's user`;
  }
  if (process.platform !== 'win32' && (st.mode & 0o022) !== 0) {
    return `${dir} is writable by group or others (mode 0${(st.mode & 0o777).toString(8)}): another user could replace an archive; chmod 700 ${dir}`;
  }
  return null;
}
