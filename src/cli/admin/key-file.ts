import fs from 'node:fs';
import { UsageError } from './failure';

/**
 * A file for new keys (--output): created readable by its owner only (0600), whatever the umask;
 * appended to when it exists and is already private (a resumed rotation), refused when group or
 * others may read it (a shell redirect makes files 0644). Each write is flushed to disk before the
 * command asks the service for more keys.
 */
export interface KeyFile {
  path: string;
  write(text: string): void;
  close(): void;
}

export function openKeyFile(file: string): KeyFile {
  let fd: number;
  try {
    fd = fs.openSync(file, 'a', 0o600);
  } catch (err) {
    throw new UsageError(`cannot open ${file} for the new keys (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const mode = fs.fstatSync(fd).mode & 0o777;
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    fs.closeSync(fd);
    throw new UsageError(
      `${file} can be read by group or others (mode 0${mode.toString(8)}): keys are not written there; use a new file, or chmod 600 ${file}`,
    );
  }
  return {
    path: file,
    write(text) {
      fs.writeSync(fd, text);
      fs.fsyncSync(fd);
    },
    close: () => fs.closeSync(fd),
  };
}

/**
 * A file for an answer that carries a license (a usage bundle's receipt): opened, and checked, before
 * the request, so a refusal costs nothing; readable by its owner only (0600); `replace` writes the
 * whole of it, replacing what it held. Refused, untouched, when group or others may read it.
 */
export function openPrivateFile(file: string, what: string): { path: string; replace(text: string): void; close(): void } {
  let fd: number;
  try {
    // Not truncated on opening: a file others may read is refused with its content intact.
    fd = fs.openSync(file, 'a', 0o600);
  } catch (err) {
    throw new UsageError(`cannot open ${file} for ${what} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const mode = fs.fstatSync(fd).mode & 0o777;
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    fs.closeSync(fd);
    throw new UsageError(
      `${file} can be read by group or others (mode 0${mode.toString(8)}): ${what} is not written there; use a new file, or chmod 600 ${file}`,
    );
  }
  return {
    path: file,
    replace(text) {
      fs.ftruncateSync(fd, 0);
      fs.writeSync(fd, text);
      fs.fsyncSync(fd);
    },
    close: () => fs.closeSync(fd),
  };
}
