import type { CliIo } from './io';

export interface Progress {
  update(rows: number, pages: number): void;
  done(): void;
}

/**
 * A one-line counter on stderr for reads that follow many pages. Only on a terminal: in a pipe or a
 * log it would be noise (and carriage returns), so it is then a no-op.
 */
export function progress(io: CliIo, label: string): Progress {
  if (!io.stderrIsTTY) return { update() {}, done() {} };
  let shown = false;
  return {
    update(rows, pages) {
      shown = true;
      io.stderr.write(`\r\x1b[K${label}: ${rows} rows, ${pages} page${pages === 1 ? '' : 's'}…`);
    },
    done() {
      if (shown) io.stderr.write('\r\x1b[K');
    },
  };
}
