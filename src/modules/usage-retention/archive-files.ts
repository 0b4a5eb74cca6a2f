import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { trimDecimal } from '../usage/quantity';
import { unnestPackKeys } from '../usage-partitions/packing';

/*
 * A month's archive: usage_events_YYYY_MM.ndjson.gz (one JSON object per event, gzip) and
 * usage_events_YYYY_MM.manifest.json (its rows, size, SHA-256 and totals). Each is written to a
 * temporary name in the same folder, fsynced, renamed, then the folder fsynced: the data file first,
 * the manifest last, so a manifest always describes a complete data file and a data file without
 * a manifest is an unfinished archive (written again). NDJSON in gzip rather than Parquet: node:zlib
 * only, readable with zcat and jq, streamed both ways (see docs/USAGE.md, Retention and archives).
 */

export const ARCHIVE_FORMAT = 'usage-archive/1';

/**
 * The select list of an archived event, the one place its layout is written down: times as ISO 8601
 * with their microseconds (a JS Date would drop them), the quantity as stored, the fingerprint in hex.
 * RESTORE_SQL reads the same fields back.
 */
export const ARCHIVE_COLUMNS_SQL = `id::text as id, customer_id::text as customer_id, metric, quantity::text as quantity,
  to_char(occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as occurred_at, idempotency_key,
  encode(request_hash, 'hex') as request_hash, to_char(usage_uuid_time(id) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as received_at,
  case state when 'l' then 'local' when 't' then 'late' else 'sent' end as state`;

/**
 * An archived batch of events back into usage_events ($1: a JSON array of ArchivedEvent); a key already
 * there, as a row or in its month's packs (a month restored while packed), is left alone. The caller
 * holds the month's pack lock (usage-partitions/packing.ts). received_at is not stored (it is the time
 * in the id, which comes back as it was).
 */
export const RESTORE_SQL = `
  with r as (
    select * from jsonb_to_recordset(?::jsonb) as r(id uuid, customer_id uuid, metric text, quantity numeric, occurred_at timestamptz,
                                                   idempotency_key text, request_hash text, state text)
  ), packed as (
    select p.customer_id, u.idempotency_key, m.month
      from (select distinct customer_id, usage_month(occurred_at) as month from r) m
      join usage_event_packs p on p.customer_id = m.customer_id and p.day >= m.month and p.day < (m.month + interval '1 month')::date
      ${unnestPackKeys('p')}
  )
  insert into usage_events (occurred_at, id, customer_id, occurred_month, state, request_hash, metric, quantity, idempotency_key)
  select r.occurred_at, r.id, r.customer_id, usage_month(r.occurred_at), case r.state when 'local' then 'l' when 'late' then 't' else 's' end::char(1),
         decode(r.request_hash, 'hex'), r.metric, r.quantity, r.idempotency_key
    from r
   where not exists (select 1 from packed x where x.customer_id = r.customer_id and x.idempotency_key = r.idempotency_key and x.month = usage_month(r.occurred_at))
  on conflict on constraint usage_events_customer_idempotency_unique do nothing`;

export interface ArchivedEvent {
  id: string;
  customer_id: string;
  metric: string;
  quantity: string;
  occurred_at: string;
  idempotency_key: string;
  request_hash: string;
  received_at: string;
  state: string;
}

export interface ArchiveTotal {
  customer_id: string;
  metric: string;
  quantity: string;
  events: number;
}

export interface Manifest {
  format: typeof ARCHIVE_FORMAT;
  month: string;
  partition: string;
  rows: number;
  bytes: number;
  sha256: string;
  first_occurred_at: string | null;
  last_occurred_at: string | null;
  totals: ArchiveTotal[];
  created_at: string;
}

/** '2024-01' -> 'usage_events_2024_01'. */
export const partitionOf = (month: string) => `usage_events_${month.replace('-', '_')}`;
export const dataFileOf = (month: string) => `${partitionOf(month)}.ndjson.gz`;
export const manifestFileOf = (month: string) => `${partitionOf(month)}.manifest.json`;

/** Sums of quantities (exact, in millionths) and counts per (customer, metric), sorted. */
export class TotalsCounter {
  private readonly sums = new Map<string, { customer_id: string; metric: string; micro: bigint; events: number }>();
  rows = 0;
  first: string | null = null;
  last: string | null = null;

  add(e: Pick<ArchivedEvent, 'customer_id' | 'metric' | 'quantity' | 'occurred_at'>): void {
    const key = `${e.customer_id}\u0000${e.metric}`;
    const s = this.sums.get(key) ?? { customer_id: e.customer_id, metric: e.metric, micro: 0n, events: 0 };
    const [int, frac = ''] = e.quantity.split('.');
    s.micro += BigInt(int!) * 1_000_000n + BigInt(frac.padEnd(6, '0').slice(0, 6));
    s.events++;
    this.sums.set(key, s);
    this.rows++;
    if (this.first === null || e.occurred_at < this.first) this.first = e.occurred_at;
    if (this.last === null || e.occurred_at > this.last) this.last = e.occurred_at;
  }

  totals(): ArchiveTotal[] {
    return [...this.sums.values()]
      .sort((a, b) => (a.customer_id === b.customer_id ? (a.metric < b.metric ? -1 : 1) : a.customer_id < b.customer_id ? -1 : 1))
      .map((s) => ({ customer_id: s.customer_id, metric: s.metric, quantity: microText(s.micro), events: s.events }));
  }
}

const microText = (micro: bigint) => trimDecimal(`${micro / 1_000_000n}.${String(micro % 1_000_000n).padStart(6, '0')}`);

/** Writes `text` (or what `write` streams) to `name` in `dir` through a temporary name: fsync, rename, fsync the folder. */
async function writeDurably(dir: string, name: string, write: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = path.join(dir, `.${name}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await write(tmp);
    const fh = await fs.promises.open(tmp, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.promises.rename(tmp, path.join(dir, name));
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
  const d = await fs.promises.open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/**
 * Writes the month's archive from `rows` (streamed, never all in memory): the data file, then its
 * manifest. Any earlier archive of the month is replaced (its manifest removed first, so a crash
 * midway leaves an unfinished archive, never a manifest describing another file).
 */
export async function writeArchive(dir: string, month: string, rows: AsyncIterable<ArchivedEvent>, now: Date): Promise<Manifest> {
  await fs.promises.rm(path.join(dir, manifestFileOf(month)), { force: true });
  const counter = new TotalsCounter();
  const hash = createHash('sha256');
  let bytes = 0;
  await writeDurably(dir, dataFileOf(month), async (tmp) => {
    // Lines handed to gzip about 64 KiB at a time, not one by one.
    async function* lines() {
      let chunk = '';
      for await (const e of rows) {
        const event: ArchivedEvent = { ...e, quantity: trimDecimal(e.quantity) };
        counter.add(event);
        chunk += `${JSON.stringify(event)}\n`;
        if (chunk.length >= 65_536) {
          yield chunk;
          chunk = '';
        }
      }
      if (chunk !== '') yield chunk;
    }
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        bytes += chunk.length;
        cb(null, chunk);
      },
    });
    await pipeline(Readable.from(lines()), createGzip(), tap, fs.createWriteStream(tmp, { flags: 'wx', mode: 0o600 }));
  });
  const manifest: Manifest = {
    format: ARCHIVE_FORMAT,
    month,
    partition: partitionOf(month),
    rows: counter.rows,
    bytes,
    sha256: hash.digest('hex'),
    first_occurred_at: counter.first,
    last_occurred_at: counter.last,
    totals: counter.totals(),
    created_at: now.toISOString(),
  };
  await writeDurably(dir, manifestFileOf(month), (tmp) => fs.promises.writeFile(tmp, `${JSON.stringify(manifest, null, 2)}\n`, { flag: 'wx', mode: 0o600 }));
  return manifest;
}

/** The month's manifest; null when there is none (no archive, or an unfinished one). Throws on a manifest that does not parse. */
export async function readManifest(dir: string, month: string): Promise<Manifest | null> {
  let text: string;
  try {
    text = await fs.promises.readFile(path.join(dir, manifestFileOf(month)), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const m = JSON.parse(text) as Manifest;
  if (m.format !== ARCHIVE_FORMAT || m.month !== month) throw new Error(`${manifestFileOf(month)} is not a ${ARCHIVE_FORMAT} manifest of ${month}`);
  return m;
}

/** The archive's events, one at a time, as written. */
export async function* readEvents(dir: string, month: string): AsyncGenerator<ArchivedEvent> {
  const gunzip = createGunzip();
  const file = fs.createReadStream(path.join(dir, dataFileOf(month)));
  // A read error or a corrupt gzip ends the iteration with that error (pipe() alone would not pass it on).
  file.on('error', (err) => gunzip.destroy(err));
  file.pipe(gunzip);
  const text = new StringDecoder('utf8');
  let rest = '';
  for await (const chunk of gunzip) {
    const lines = (rest + text.write(chunk as Buffer)).split('\n');
    rest = lines.pop()!;
    for (const line of lines) if (line !== '') yield JSON.parse(line) as ArchivedEvent;
  }
  rest += text.end();
  if (rest !== '') yield JSON.parse(rest) as ArchivedEvent;
}

/** The data file's size and SHA-256, read back from the disk. */
export async function digestOf(dir: string, month: string): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of fs.createReadStream(path.join(dir, dataFileOf(month)))) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { bytes, sha256: hash.digest('hex') };
}

/** The months that have an archive file in `dir` (finished or not), and whether each has its manifest. */
export async function archivedMonths(dir: string): Promise<{ month: string; complete: boolean }[]> {
  const names = new Set(await fs.promises.readdir(dir));
  const months = new Set<string>();
  for (const n of names) {
    const m = /^usage_events_(\d{4})_(\d{2})\.(ndjson\.gz|manifest\.json)$/.exec(n);
    if (m) months.add(`${m[1]}-${m[2]}`);
  }
  return [...months].sort().map((month) => ({ month, complete: names.has(manifestFileOf(month)) && names.has(dataFileOf(month)) }));
}
