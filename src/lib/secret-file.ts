import fs from 'node:fs';

/**
 * A file holding a secret must be readable by its owner only: any permission for group or others
 * (read: anyone on the host or in the pod's group copies the secret; write: anyone replaces it)
 * is refused with the fix. Windows has no such mode bits: nothing to check there.
 */
export function secretFileProblem(file: string, mode: number): string | null {
  if (process.platform === 'win32' || (mode & 0o077) === 0) return null;
  return `${file} can be read or written by group or others (mode 0${(mode & 0o777).toString(8)}): chmod 600 ${file}`;
}

/**
 * The `.env` file dotenv reads at start: it may hold every secret, so production holds it to the
 * same rule as a secret file. null when there is no such file or it is private.
 */
export function envFileProblem(file: string, statSync: (f: string) => { mode: number } = fs.statSync): string | null {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch {
    return null;
  }
  const problem = secretFileProblem(file, mode);
  return problem ? `.env: ${problem}` : null;
}
