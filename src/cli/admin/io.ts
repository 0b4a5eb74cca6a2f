/**
 * Where a command writes, so the same commands run in the real process and in tests. stdout holds
 * the answer (a table, a key, the service's JSON); everything said to the person goes to stderr.
 */
export interface CliIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  /** Progress and colours only when a person is watching. */
  stderrIsTTY: boolean;
  stdoutIsTTY: boolean;
  /** Terminal width, when known (the chart fits itself to it). */
  columns?: number;
  env: Record<string, string | undefined>;
  readStdin(): Promise<string>;
}

export function processIo(): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stderrIsTTY: Boolean(process.stderr.isTTY),
    stdoutIsTTY: Boolean(process.stdout.isTTY),
    columns: process.stdout.columns,
    env: process.env,
    async readStdin() {
      const chunks: Buffer[] = [];
      for await (const c of process.stdin) chunks.push(c as Buffer);
      return Buffer.concat(chunks).toString('utf8');
    },
  };
}

/**
 * Values come from the service and, before it, from whoever created the customer: a company name
 * holding terminal escape sequences must not repaint the admin's terminal.
 */
export const printable = (v: unknown): string =>
  (typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : v === null || v === undefined ? '' : JSON.stringify(v)).replace(
    // eslint-disable-next-line no-control-regex
    /[\x00-\x1f\x7f-\x9f]/g,
    '?',
  );

export interface Column<T> {
  header: string;
  value: (row: T) => unknown;
  /** Right-aligned (numbers). */
  right?: boolean;
}

/** A small aligned table: a header line, then one line per row, columns two spaces apart. */
export function table<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  const cells = rows.map((r) => columns.map((c) => printable(c.value(r))));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => (columns[i]!.right ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header.toUpperCase())), ...cells.map(line)].join('\n') + '\n';
}

/** One object as `field  value` lines, for the show commands. */
export function details(fields: readonly [string, unknown][]): string {
  const width = Math.max(...fields.map(([k]) => k.length));
  return fields.map(([k, v]) => `${k.padEnd(width)}  ${printable(v)}`).join('\n') + '\n';
}

/** The service's JSON, unchanged (indented for reading; parse it back and it is the same value). */
export const jsonText = (body: unknown) => `${JSON.stringify(body, null, 2)}\n`;

/**
 * RFC 4180 CSV: a header line, then one line per row, CRLF. A text cell that a spreadsheet would run
 * as a formula (= + - @, tab, carriage return first) gets a leading apostrophe: the values come
 * from Stripe and, before it, from whoever typed them.
 */
export function csv<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  const cell = (v: unknown): string => {
    let text = printable(v);
    if (typeof v === 'string' && /^[=+\-@\t\r]/.test(v)) text = `'${text}`;
    return /[",\r\n]/.test(text) || text !== text.trim() ? `"${text.replace(/"/g, '""')}"` : text;
  };
  return [columns.map((c) => cell(c.header)), ...rows.map((r) => columns.map((c) => cell(c.value(r))))].map((line) => line.join(',')).join('\r\n') + '\r\n';
}
