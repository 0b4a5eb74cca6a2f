import { digestOf, readEvents, TotalsCounter, type ArchiveTotal, type Manifest } from './archive-files';

/**
 * What is wrong with a month's archive, read back from the disk: its size and SHA-256 against the
 * manifest, then every event, counted and summed per (customer, metric) against the manifest's rows,
 * totals and first and last times. Empty when it verifies.
 */
export async function archiveProblems(dir: string, month: string, manifest: Manifest): Promise<string[]> {
  const problems: string[] = [];
  try {
    const { bytes, sha256 } = await digestOf(dir, month);
    if (sha256 !== manifest.sha256) problems.push(`the file's sha256 is ${sha256}, its manifest says ${manifest.sha256}`);
    if (bytes !== manifest.bytes) problems.push(`the file has ${bytes} bytes, its manifest says ${manifest.bytes}`);
  } catch (err) {
    return [`the file cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`];
  }
  const counted = new TotalsCounter();
  try {
    for await (const e of readEvents(dir, month)) counted.add(e);
  } catch (err) {
    problems.push(`its events cannot be read back (${(err as Error).message})`);
    return problems;
  }
  if (counted.rows !== manifest.rows) problems.push(`the file holds ${counted.rows} events, its manifest says ${manifest.rows}`);
  if (!sameTotals(counted.totals(), manifest.totals)) problems.push('the totals per customer and metric differ from its manifest');
  if (counted.first !== manifest.first_occurred_at || counted.last !== manifest.last_occurred_at)
    problems.push('the first or last occurred_at differs from its manifest');
  return problems;
}

/** What differs between the manifest and the rows of the month's table. */
export function tableProblems(manifest: Manifest, table: { rows: number; totals: ArchiveTotal[] }): string[] {
  const problems: string[] = [];
  if (table.rows !== manifest.rows) problems.push(`the partition has ${table.rows} events, the archive ${manifest.rows}`);
  else if (!sameTotals(table.totals, manifest.totals)) problems.push('the totals per customer and metric differ between the partition and the archive');
  return problems;
}

const key = (t: ArchiveTotal) => `${t.customer_id}|${t.metric}|${t.quantity}|${t.events}`;
function sameTotals(a: readonly ArchiveTotal[], b: readonly ArchiveTotal[]): boolean {
  const x = a.map(key).sort();
  const y = b.map(key).sort();
  return x.length === y.length && x.every((k, i) => k === y[i]);
}
