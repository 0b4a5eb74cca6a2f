import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { UsageEventBody } from './client-types';
import { QueueDiskFullError, QueueFullError } from './client-errors';
import { toMicros } from './metered-usage';
import { ensurePrivateDir, isDiskFull, OPEN, openPrivate, readPrivate, syncDir } from './private-fs';
import { acquireLock, type QueueLock } from './queue-lock';
import { serial } from './serial';

/**
 * The on-disk queue of usage events, in one directory:
 *
 *   lock                  the writer's pid (one writer per directory; see queue-lock.ts)
 *   segment-<n>.jsonl     append-only, one event per line, exactly the JSON that will be sent
 *   ack.json              {"version":1,"segment":n,"offset":bytes}: every line before it is acknowledged
 *   dead-letter.jsonl     events the service refused for good, one per line, with why
 *
 * The directory must be private to this user (UnsafePathError otherwise) and every file in it is
 * opened without following symbolic links (see private-fs.ts).
 *
 * Crash safety. An append resolves only after its lines are written and fsynced, so a resolved
 * event is on disk. The acknowledgement is written only after the service has confirmed the events
 * before it; a crash before that write resends them with the same keys, which the service answers as
 * replays. It is one 64-byte record overwritten in place at offset 0 and fsynced: a write within one
 * disk sector is all-or-nothing (PostgreSQL keeps pg_control under 512 bytes for the same reason), and
 * an overwrite needs no new space, so a full disk never stops the queue from draining. A crash in the middle of an append leaves a
 * torn last line: its append never resolved, so it is dropped (the file is cut back to its last full
 * line before anything is appended again). A segment is retired only when everything in it is
 * acknowledged: the next segment is created, the acknowledgement moved to it, then the old file removed;
 * segments older than the acknowledgement found at start are leftovers of that and are removed.
 */
export interface QueueLimits {
  /** Events waiting to be sent. Default 100,000. */
  maxEvents: number;
  /** Bytes of events waiting to be sent. Default 64 MiB. */
  maxBytes: number;
  /** A fully acknowledged segment at least this large is replaced by a new one. Default 1 MiB. */
  segmentBytes: number;
}

export const defaultQueueLimits: QueueLimits = { maxEvents: 100_000, maxBytes: 64 * 1024 * 1024, segmentBytes: 1024 * 1024 };

/** One queued event and where its line ends. */
export interface QueueEntry {
  event: UsageEventBody;
  segment: number;
  end: number;
  bytes: number;
}

/** Where an event's line ends in the queue: every event at or before it is older. */
export interface QueuePosition {
  segment: number;
  end: number;
}

const atOrBefore = (a: QueuePosition, b: QueuePosition) => a.segment < b.segment || (a.segment === b.segment && a.end <= b.end);

/** One line of dead-letter.jsonl. */
export interface DeadLetter {
  event: UsageEventBody | null;
  /**
   * Where the line is, when it could not be read as an event: the segment file, the byte offset and
   * the length. Its bytes are never copied (they may not be an event at all).
   */
  source?: { file: string; offset: number; length: number };
  status: number | null;
  code: string;
  message: string;
  requestId: string | null;
  details?: unknown;
  at: string;
}

const SEGMENT = /^segment-(\d{12})\.jsonl$/;
const segmentName = (n: number) => `segment-${String(n).padStart(12, '0')}.jsonl`;
const ACK_VERSION = 1;
const ACK_BYTES = 64;

function diskFull(dir: string, err: unknown): Error {
  if (!isDiskFull(err)) return err as Error;
  return new QueueDiskFullError(
    `The disk holding the usage queue ${dir} is full: nothing of the call was queued (queued events are still sent and acknowledged)`,
    dir,
    { cause: err },
  );
}

export class UsageQueue {
  private pending: QueueEntry[] = [];
  private pendingBytes = 0;
  /** Per metric, the quantity waiting (millionths): what license.allows() adds for events not sent yet. */
  private readonly waiting = new Map<string, bigint>();
  private segment = 0;
  private size = 0;
  private fd: FileHandle | null = null;
  private ackFd: FileHandle | null = null;
  /** An append found the disk full since the last rotation. */
  private diskWasFull = false;
  /** One at a time: appends, acknowledgements and segment changes never interleave. */
  private readonly exclusive = serial();

  private constructor(
    readonly dir: string,
    private readonly limits: QueueLimits,
    private readonly lock: QueueLock,
  ) {}

  /** Takes the directory's lock and reads back what was queued and not acknowledged. */
  static async open(dir: string, limits: Partial<QueueLimits> = {}): Promise<UsageQueue> {
    await ensurePrivateDir(dir, 'usage queue');
    const lock = await acquireLock(path.join(dir, 'lock'));
    const q = new UsageQueue(dir, { ...defaultQueueLimits, ...limits }, lock);
    try {
      await q.recover();
    } catch (err) {
      await q.fd?.close();
      await q.ackFd?.close();
      await lock.release();
      throw err;
    }
    return q;
  }

  get length(): number {
    return this.pending.length;
  }

  get bytes(): number {
    return this.pendingBytes;
  }

  get deadLetterFile(): string {
    return path.join(this.dir, 'dead-letter.jsonl');
  }

  /** The oldest events not acknowledged, in order. */
  peek(max: number): QueueEntry[] {
    return this.pending.slice(0, max);
  }

  /** The quantity of `metric` waiting to be sent, in millionths. */
  waitingMicros(metric: string): bigint {
    return this.waiting.get(metric) ?? 0n;
  }

  private track(entries: readonly QueueEntry[], sign: 1n | -1n): void {
    for (const { event } of entries) {
      const q = toMicros(event.quantity);
      if (q === null || typeof event.metric !== 'string') continue;
      const v = (this.waiting.get(event.metric) ?? 0n) + sign * q;
      if (v === 0n) this.waiting.delete(event.metric);
      else this.waiting.set(event.metric, v);
    }
  }

  /** Writes the events (all or none) and fsyncs them; resolves once they are on disk. */
  append(events: UsageEventBody[]): Promise<void> {
    return this.exclusive(async () => {
      if (!this.fd) throw new Error('the usage queue is closed');
      const lines = events.map((e) => JSON.stringify(e) + '\n');
      const bytes = lines.reduce((n, l) => n + Buffer.byteLength(l), 0);
      const { maxEvents, maxBytes } = this.limits;
      if (this.pending.length + events.length > maxEvents || this.pendingBytes + bytes > maxBytes) {
        throw new QueueFullError(
          `The usage queue in ${this.dir} is full (${this.pending.length} events, ${this.pendingBytes} bytes; at most ${maxEvents} events, ${maxBytes} bytes): nothing was queued`,
          { events: this.pending.length, bytes: this.pendingBytes, maxEvents, maxBytes },
        );
      }
      const text = lines.join('');
      try {
        await this.write(text);
      } catch (err) {
        if (!isDiskFull(err)) throw err;
        this.diskWasFull = true;
        // Everything in the segment is acknowledged: a new one frees its space, and the append is tried once more.
        if (
          this.pending.length > 0 ||
          this.size === 0 ||
          !(await this.rotate().then(
            () => true,
            () => false,
          ))
        )
          throw diskFull(this.dir, err);
        await this.write(text).catch((again: unknown) => {
          throw diskFull(this.dir, again);
        });
      }
      const start = this.size;
      let end = start;
      const added: QueueEntry[] = [];
      for (const [i, line] of lines.entries()) {
        const b = Buffer.byteLength(line);
        end += b;
        added.push({ event: events[i]!, segment: this.segment, end, bytes: b });
      }
      this.pending.push(...added);
      this.track(added, 1n);
      this.size = end;
      this.pendingBytes += bytes;
    });
  }

  /** Appends whole lines and fsyncs them, or cuts off whatever part was written (the file ends on a whole line again). */
  private async write(text: string): Promise<void> {
    const fd = this.fd!;
    try {
      await fd.appendFile(text);
      await fd.datasync();
    } catch (err) {
      await fd.truncate(this.size).catch(() => undefined);
      throw err;
    }
  }

  /** The pending events as of now (a copy), in order: what an export carries. */
  snapshot(): Promise<QueueEntry[]> {
    return this.exclusive(() => Promise.resolve(this.pending.slice()));
  }

  /**
   * The service has the first `count` pending events: moves the acknowledgement past them. `taken`
   * runs as they leave the queue, in the same step (the usage ledger counts them there, so an event
   * is never counted as both waiting and acknowledged, nor as neither).
   */
  acknowledge(count: number, taken?: () => void): Promise<void> {
    return this.exclusive(async () => {
      if (count <= 0) return;
      if (count > this.pending.length) throw new Error('acknowledging more events than are queued');
      await this.take(count, taken);
    });
  }

  /**
   * Everything pending up to and including the event whose line ends at `through` is acknowledged:
   * by position, not by count, so two acknowledgers (the flusher, a usage bundle's receipt) never take
   * each other's events. What left the queue already is skipped. `prepare` is told which events leave,
   * before they do, and answers the step that runs as they leave (see acknowledge). Answers how many left.
   */
  acknowledgeThrough(through: QueuePosition, prepare?: (leaving: QueueEntry[]) => Promise<(() => void) | undefined>): Promise<number> {
    return this.exclusive(async () => {
      let count = 0;
      while (count < this.pending.length && atOrBefore(this.pending[count]!, through)) count += 1;
      if (count === 0) return 0;
      const taken = prepare ? await prepare(this.pending.slice(0, count)) : undefined;
      await this.take(count, taken);
      return count;
    });
  }

  /** Moves the acknowledgement past the first `count` pending events (inside exclusive). */
  private async take(count: number, taken?: () => void): Promise<void> {
    const last = this.pending[count - 1]!;
    await this.writeAck(last.segment, last.end);
    const done = this.pending.splice(0, count);
    this.track(done, -1n);
    taken?.();
    this.pendingBytes -= done.reduce((n, e) => n + e.bytes, 0);
    // After a full disk the segment is replaced as soon as it is all acknowledged, to give its space back.
    // A rotation that fails (a full disk cannot take the new file) is tried again later.
    if (this.pending.length === 0 && (this.size >= this.limits.segmentBytes || this.diskWasFull)) {
      await this.rotate().then(
        () => (this.diskWasFull = false),
        () => undefined,
      );
    }
  }

  /** Keeps an event the service refused for good (fsynced before it is acknowledged). */
  async deadLetter(entry: Omit<DeadLetter, 'at'>): Promise<void> {
    const h = await openPrivate(this.deadLetterFile, OPEN.readAppend);
    try {
      // A line torn by a crash stays as it is (unreadable, skipped by readers); the new line starts on a line of its own.
      const size = (await h.stat()).size;
      const last = size > 0 ? (await h.read(Buffer.alloc(1), 0, 1, size - 1)).buffer[0] : 0x0a;
      await h.write(`${last === 0x0a ? '' : '\n'}${JSON.stringify({ ...entry, at: new Date().toISOString() })}\n`);
      await h.datasync();
    } catch (err) {
      throw diskFull(this.dir, err);
    } finally {
      await h.close();
    }
  }

  /** Closes the segment and releases the lock. Queued events stay on disk for the next open. */
  close(): Promise<void> {
    return this.exclusive(async () => {
      await this.fd?.close();
      await this.ackFd?.close();
      this.fd = null;
      this.ackFd = null;
      await this.lock.release();
    });
  }

  /** One fixed-size record in place (see the top of this file): no new space, all or nothing. */
  private async writeAck(segment: number, offset: number): Promise<void> {
    if (!this.ackFd) throw new Error('the usage queue is closed');
    const json = JSON.stringify({ version: ACK_VERSION, segment, offset });
    await this.ackFd.write(json.padEnd(ACK_BYTES - 1, ' ') + '\n', 0, 'utf8');
    await this.ackFd.datasync();
  }

  /** Opens ack.json (created with the first record if missing) and reads it. */
  private async readAck(): Promise<{ segment: number; offset: number }> {
    const file = path.join(this.dir, 'ack.json');
    const fd = await openPrivate(file, OPEN.readWrite).catch((err: unknown) => {
      throw diskFull(this.dir, err);
    });
    this.ackFd = fd;
    const buf = await fd.readFile();
    if (buf.length === 0) {
      await this.writeAck(0, 0).catch((err: unknown) => {
        throw diskFull(this.dir, err);
      });
      await syncDir(this.dir);
      return { segment: 0, offset: 0 };
    }
    let ack: { version?: unknown; segment?: unknown; offset?: unknown } = {};
    try {
      ack = JSON.parse(buf.toString('utf8')) as typeof ack;
    } catch {
      // reported below
    }
    if (ack.version !== ACK_VERSION || !Number.isSafeInteger(ack.segment) || !Number.isSafeInteger(ack.offset)) {
      throw new Error(`${file} is not an acknowledgement file this client writes`);
    }
    if (buf.length !== ACK_BYTES) {
      // Written by an earlier version (temporary file and rename): rewritten as the fixed-size record.
      await this.writeAck(ack.segment as number, ack.offset as number);
      await fd.truncate(ACK_BYTES);
    }
    return { segment: ack.segment as number, offset: ack.offset as number };
  }

  /** Everything after the acknowledgement, across segments; a torn last line is cut off. */
  private async recover(): Promise<void> {
    const ack = await this.readAck();
    const segments = (await fsp.readdir(this.dir))
      .map((f) => SEGMENT.exec(f))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    for (const n of segments.filter((s) => s < ack.segment)) await fsp.rm(path.join(this.dir, segmentName(n)), { force: true });
    const live = segments.filter((s) => s >= ack.segment);
    if (live.length === 0) live.push(ack.segment);

    for (const n of live) {
      const file = path.join(this.dir, segmentName(n));
      const last = n === live[live.length - 1];
      // The last segment is the one appended to: opened (created if missing) once, for reading and appending.
      const fd = last
        ? await openPrivate(file, OPEN.readAppend).catch((err: unknown) => {
            throw diskFull(this.dir, err);
          })
        : null;
      if (fd) this.fd = fd;
      const buf = fd ? await fd.readFile() : ((await readPrivate(file)) ?? Buffer.alloc(0));
      const whole = buf.lastIndexOf(0x0a) + 1;
      let pos = n === ack.segment ? Math.min(ack.offset, whole) : 0;
      while (pos < whole) {
        const nl = buf.indexOf(0x0a, pos);
        const end = nl + 1;
        try {
          const event = JSON.parse(buf.subarray(pos, nl).toString('utf8')) as UsageEventBody;
          if (typeof event !== 'object' || event === null || typeof event.idempotency_key !== 'string') throw new Error('not an event');
          const entry = { event, segment: n, end, bytes: end - pos };
          this.pending.push(entry);
          this.track([entry], 1n);
          this.pendingBytes += end - pos;
        } catch {
          // Only a damaged disk makes a whole line unreadable (appends are whole lines, fsynced): kept for a person to see.
          await this.deadLetter({
            event: null,
            source: { file: segmentName(n), offset: pos, length: end - pos },
            status: null,
            code: 'UNREADABLE_LINE',
            message: `line at byte ${pos} of ${segmentName(n)} is not an event`,
            requestId: null,
          });
        }
        pos = end;
      }
      if (fd) {
        this.segment = n;
        this.size = whole;
        if (buf.length > whole) {
          await fd.truncate(whole);
          await fd.datasync();
        }
        await syncDir(this.dir);
      }
    }
  }

  /** Everything is acknowledged: a new segment, the acknowledgement moved to it, the old one removed. */
  private async rotate(): Promise<void> {
    const next = this.segment + 1;
    const nextFile = path.join(this.dir, segmentName(next));
    const fd = await openPrivate(nextFile, OPEN.createAppend);
    try {
      await syncDir(this.dir);
      await this.writeAck(next, 0);
    } catch (err) {
      await fd.close();
      await fsp.rm(nextFile, { force: true });
      throw err;
    }
    await this.fd?.close();
    const old = this.segment;
    this.fd = fd;
    this.segment = next;
    this.size = 0;
    await fsp.rm(path.join(this.dir, segmentName(old)), { force: true });
  }
}
