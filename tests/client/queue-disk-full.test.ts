/**
 * The queue on a full disk: a small tmpfs (mounted here; tests run as root in CI) filled by the
 * queue and then to the last byte. Appending is QueueDiskFullError with nothing half-written; the
 * service's acknowledgements still drain the queue (they need no new space); no temporary file is
 * left at any step; and once the queue has drained, and once the filler is gone, it takes events again.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BillingClient, QueueDiskFullError, type BillingClientOptions } from '../../packages/client';
import { FakeUsageService } from './fake-usage-service';

const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-full-disk-'));
let mounted = false;
try {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=128k,mode=0700', 'tmpfs', mnt], { stdio: 'pipe' });
  mounted = true;
} catch (err) {
  console.warn(`SKIPPED queue-disk-full.test.ts: a tmpfs cannot be mounted here (${(err as Error).message.split('\n')[0]}); run as root to test a full disk`);
}
const testIfMounted = mounted ? test : test.skip;

let svc: FakeUsageService;
const open: BillingClient[] = [];
const queueDir = path.join(mnt, 'queue');
const client = (o: Partial<BillingClientOptions> = {}) => {
  const c = new BillingClient({
    baseUrl: svc.url,
    apiKey: 'test-key',
    queueDir,
    backoffBaseMs: 5,
    backoffMaxMs: 20,
    maxRetries: 0,
    flushIntervalMs: 600_000,
    ...o,
  });
  open.push(c);
  return c;
};
/** Every file on the mount, recursively (the queue's and the filler). */
const files = (d = mnt): string[] => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(path.join(d, e.name)) : [e.name]));
const leftovers = () => files().filter((f) => /\.tmp$|\.dead$|\.steal$/.test(f) || f.startsWith('.'));
/** Writes to a file until the disk refuses: afterwards not one byte is free. */
function fillDisk(file: string): void {
  const fd = fs.openSync(file, 'a');
  try {
    for (const size of [16384, 4096, 512, 64, 1]) {
      try {
        for (;;) fs.writeSync(fd, Buffer.alloc(size, 'x'));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
}
let n = 0;
const batch = (size: number) => Array.from({ length: size }, () => ({ metric: 'api_calls', quantity: 1, idempotency_key: `full-${n++}-${'k'.repeat(150)}` }));

beforeAll(async () => {
  svc = new FakeUsageService();
  await svc.start();
});
afterAll(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
  await svc.stop();
  if (mounted) execFileSync('umount', [mnt]);
  fs.rmSync(mnt, { recursive: true, force: true });
});

describe('the queue on a full disk', () => {
  testIfMounted(
    'when the disk fills, then QueueDiskFullError and nothing half-written; the queue drains while the disk is full, leaves no temporary file, and takes events again',
    async () => {
      const port = svc.port;
      await svc.stop();
      const first = client();
      let accepted = 0;
      let err: unknown = null;
      while (!err) {
        try {
          await first.reportUsage(batch(20));
          accepted += 20;
        } catch (e) {
          err = e;
        }
      }
      expect(err).toBeInstanceOf(QueueDiskFullError);
      expect(err).toMatchObject({ dir: queueDir, cause: expect.objectContaining({ code: 'ENOSPC' }) });
      expect(accepted).toBeGreaterThan(100);
      expect(await first.queued()).toMatchObject({ events: accepted });
      // Not one byte left for anything.
      fillDisk(path.join(mnt, 'filler'));
      await expect(first.reportUsage(batch(20))).rejects.toBeInstanceOf(QueueDiskFullError);
      expect(leftovers()).toEqual([]);

      // A restart on the full disk reads back exactly what was accepted: no torn or half batch.
      await first.close();
      const second = client();
      expect(await second.queued()).toMatchObject({ events: accepted });

      // The service comes back: every acknowledgement is written though the disk is full.
      await svc.start(port);
      expect(await second.flush()).toMatchObject({ sent: accepted, deadLettered: 0 });
      expect(svc.stored.size).toBe(accepted);
      expect(await second.queued()).toEqual({ events: 0, bytes: 0 });
      expect(leftovers()).toEqual([]);

      // The drained segment gave its space back: events are queued again, the filler still there.
      await second.reportUsage(batch(20));
      expect(await second.flush()).toMatchObject({ sent: 20 });
      expect(svc.stored.size).toBe(accepted + 20);

      // Space returns: the queue is as before.
      fs.rmSync(path.join(mnt, 'filler'));
      await second.reportUsage(batch(100));
      expect(await second.flush()).toMatchObject({ sent: 100 });
      expect(svc.stored.size).toBe(accepted + 120);
      expect(leftovers()).toEqual([]);
      // The usage ledger beside it (what the service acknowledged, for license.allows()): its lines on a full disk were reported, not fatal.
      expect(files().sort()).toEqual(['ack.json', 'lock', expect.stringMatching(/^segment-\d{12}\.jsonl$/), 'usage-ledger.jsonl']);
    },
    60_000,
  );
});
