import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { UsageEventBody, UsageReceipt } from './client-types';
import { fromMicros, toMicros } from './metered-usage';
import { UnsafePathError } from './client-errors';
import { isDiskFull, OPEN, openPrivate, readPrivate, writeFileAtomic } from './private-fs';
import { serial } from './serial';

/** The ledger's file, in the queue's folder (or license.dir). */
export const LEDGER_FILE = 'usage-ledger.jsonl';
/** Lines older than this are dropped when the ledger is opened: a license's period is at most a month or so. */
export const LEDGER_KEEP_MS = 40 * 86_400_000;
/** Idempotency keys remembered (in memory) so that an event sent again and answered as a replay counts once. */
const KEYS_REMEMBERED = 100_000;

interface Line {
  at: number;
  m: Map<string, bigint>;
}

type Obj = Record<string, unknown>;

/** One line of the file, or null when it is not one (a torn last line, a damaged disk). */
function parseLine(text: string): Line | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const { at, m } = v as Obj;
  if (typeof at !== 'number' || !Number.isSafeInteger(at) || at < 0 || typeof m !== 'object' || m === null || Array.isArray(m)) return null;
  const out = new Map<string, bigint>();
  for (const [metric, q] of Object.entries(m as Obj)) {
    const micros = typeof q === 'string' ? toMicros(q) : null;
    if (micros === null) return null;
    out.set(metric, micros);
  }
  return { at, m: out };
}

/**
 * What this instance reported that the service acknowledged (stored it, or answered that it already
 * had it), by when it was acknowledged: the local part of `license.allows()` and `license.usage()`
 * (docs/LICENSE-VERIFICATION.md). An append-only JSONL file, one line per acknowledgement:
 *
 *   {"at": <ms, this clock, when the service acknowledged>, "m": {"<metric>": "<decimal>"}}
 *
 * Opened without following a symbolic link and refused when another user owns it or it has a second
 * name (private-fs.ts), mode 0600, each line fsynced. Compacted when opened: lines older than 40 days
 * and unreadable ones (a torn last line after a crash) are dropped, through a new file renamed into
 * place. A write that fails (a full disk) is cut back to the last whole line and reported; the
 * acknowledgement still counts in memory, so the instance keeps deciding right until it restarts. A
 * full disk never stops the queue beside it: a compaction that cannot be written leaves the file as
 * it was, a file that cannot be created leaves the ledger in memory (both reported). Without a folder
 * (no queue, no license.dir) it is kept in memory only.
 */
export class UsageLedger {
  private lines: Line[] = [];
  /** Lines appended in order of `at` (false after this clock went back: sums then read every line). */
  private ordered = true;
  private size = 0;
  /** The file ends with a torn line that could not be compacted away: the next line starts on a line of its own. */
  private torn = false;
  private readonly keys = new Set<string>();
  private readonly exclusive = serial();

  private constructor(
    readonly file: string | null,
    private fd: FileHandle | null,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** A ledger in memory only (nothing survives a restart). */
  static memory(onError: (err: unknown) => void = () => undefined): UsageLedger {
    return new UsageLedger(null, null, onError);
  }

  /** The ledger of a private folder: read back, compacted, opened for appending. */
  static async open(dir: string, o: { now?: number; onError?: (err: unknown) => void } = {}): Promise<UsageLedger> {
    const file = path.join(dir, LEDGER_FILE);
    const text = ((await readPrivate(file)) ?? Buffer.alloc(0)).toString('utf8');
    const cutoff = (o.now ?? Date.now()) - LEDGER_KEEP_MS;
    const kept: { line: Line; text: string }[] = [];
    let changed = text.length > 0 && !text.endsWith('\n');
    for (const raw of text.split('\n')) {
      if (raw === '') continue;
      const line = parseLine(raw);
      if (line === null || line.at < cutoff) changed = true;
      else kept.push({ line, text: raw });
    }
    const onError = o.onError ?? (() => undefined);
    const content = kept.map((k) => `${k.text}\n`).join('');
    let size = Buffer.byteLength(text);
    let torn = text.length > 0 && !text.endsWith('\n');
    if (changed) {
      try {
        await writeFileAtomic(file, content, 0o600, 'usage ledger');
        [size, torn] = [Buffer.byteLength(content), false];
      } catch (err) {
        if (err instanceof UnsafePathError) throw err;
        onError(err);
      }
    }
    let fd: FileHandle | null = null;
    try {
      fd = await openPrivate(file, OPEN.append);
    } catch (err) {
      if (!isDiskFull(err)) throw err;
      onError(err);
    }
    const ledger = new UsageLedger(file, fd, onError);
    [ledger.size, ledger.torn] = [size, torn];
    for (const k of kept) ledger.add(k.line);
    return ledger;
  }

  /**
   * Writes what the service acknowledged of `events` (the events `receipts` name, stored or replayed;
   * one already counted by this process is not counted again) and returns the step that counts it:
   * called where the acknowledgement is taken off the queue, so the two never count it at once.
   */
  async prepare(at: number, events: readonly UsageEventBody[], receipts: readonly UsageReceipt[]): Promise<() => void> {
    const acknowledged = new Set(receipts.map((r) => r.idempotencyKey));
    const counted: string[] = [];
    const sums = new Map<string, bigint>();
    for (const e of events) {
      const key = e.idempotency_key;
      if (!acknowledged.has(key) || this.keys.has(key) || counted.includes(key)) continue;
      const q = toMicros(e.quantity);
      if (q === null) continue;
      counted.push(key);
      sums.set(e.metric, (sums.get(e.metric) ?? 0n) + q);
    }
    const line: Line = { at, m: sums };
    if (sums.size > 0) await this.append(line);
    return () => {
      for (const k of counted) this.remember(k);
      if (sums.size > 0) this.add(line);
    };
  }

  /** prepare(...) and count it at once (no queue to keep in step with). */
  async record(at: number, events: readonly UsageEventBody[], receipts: readonly UsageReceipt[]): Promise<void> {
    (await this.prepare(at, events, receipts))();
  }

  /** Millionths of `metric` acknowledged at or after `sinceMs`. */
  since(metric: string, sinceMs: number): bigint {
    let sum = 0n;
    for (let i = this.lines.length - 1; i >= 0; i--) {
      const line = this.lines[i]!;
      if (line.at < sinceMs) {
        if (this.ordered) break;
        continue;
      }
      sum += line.m.get(metric) ?? 0n;
    }
    return sum;
  }

  /** Closes the file; what was counted stays readable. */
  close(): Promise<void> {
    return this.exclusive(async () => {
      await this.fd?.close();
      this.fd = null;
    });
  }

  private add(line: Line): void {
    const last = this.lines[this.lines.length - 1];
    if (last && line.at < last.at) this.ordered = false;
    this.lines.push(line);
    // Memory holds what the file would after a compaction.
    const cutoff = line.at - LEDGER_KEEP_MS;
    if (this.ordered && this.lines[0]!.at < cutoff) this.lines = this.lines.filter((l) => l.at >= cutoff);
  }

  private remember(key: string): void {
    this.keys.add(key);
    if (this.keys.size > KEYS_REMEMBERED) this.keys.delete(this.keys.values().next().value!);
  }

  private append(line: Line): Promise<void> {
    return this.exclusive(async () => {
      const fd = this.fd;
      if (!fd) return;
      const json = JSON.stringify({ at: line.at, m: Object.fromEntries([...line.m].map(([k, v]) => [k, fromMicros(v)])) });
      const text = `${this.torn ? '\n' : ''}${json}\n`;
      try {
        await fd.appendFile(text);
        await fd.datasync();
        this.size += Buffer.byteLength(text);
        this.torn = false;
      } catch (err) {
        await fd.truncate(this.size).catch(() => undefined);
        this.onError(err);
      }
    });
  }
}
