/**
 * A process that exports usage or imports a receipt (usage-bundle-crash.test.ts) and kills itself
 * with SIGKILL at one file-system step: every call that changes a file or a folder, or makes it
 * durable (open for writing, write, fsync, rename, link, rm, truncate, mkdir) counts as one step.
 * CRASH_AT=n dies before step n (CRASH_MODE=before) or halfway through its write (CRASH_MODE=torn:
 * half the bytes reach the file, as after a power cut; never the queue's 64-byte acknowledgement,
 * which the queue relies on being written whole). CRASH_AT=0 runs to the end and prints the steps.
 */
import fs, { constants, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { BillingClient } from '../../packages/client';

const crashAt = Number(process.env.CRASH_AT ?? 0);
const torn = process.env.CRASH_MODE === 'torn';
const steps: string[] = [];
let armed = false;
const names = new WeakMap<object, string>();

function die(step: string): never {
  fs.writeSync(2, `killed at step ${steps.length}: ${step}\n`);
  process.kill(process.pid, 'SIGKILL');
  throw new Error('unreachable');
}

/** Counts a step; true when the process must die at it. */
function step(name: string): boolean {
  if (!armed) return false;
  steps.push(name);
  return steps.length === crashAt;
}

type Fn = (...args: unknown[]) => Promise<unknown>;
const label = (p: unknown) => (typeof p === 'string' ? path.basename(p) : String(p));

function wrapFs(method: 'rename' | 'rm' | 'unlink' | 'link' | 'mkdir' | 'truncate' | 'writeFile' | 'appendFile'): void {
  const original = (fsp[method] as Fn).bind(fsp);
  (fsp as unknown as Record<string, Fn>)[method] = (...args: unknown[]) => {
    if (step(`${method} ${label(args[0])}`)) die(`${method} ${label(args[0])}`);
    return original(...args);
  };
}

const WRITES = constants.O_WRONLY | constants.O_RDWR | constants.O_CREAT | constants.O_APPEND | constants.O_TRUNC;
const openOriginal = fsp.open.bind(fsp);
(fsp as unknown as Record<string, Fn>).open = async (...args: unknown[]) => {
  const [file, flags] = args as [string, string | number | undefined];
  const writes = typeof flags === 'number' ? (flags & WRITES) !== 0 : flags !== undefined && flags !== 'r';
  if (writes && step(`open ${label(file)}`)) die(`open ${label(file)}`);
  const h = await (openOriginal as Fn)(...args);
  names.set(h as object, label(file));
  return h;
};
for (const m of ['rename', 'rm', 'unlink', 'link', 'mkdir', 'truncate', 'writeFile', 'appendFile'] as const) wrapFs(m);

async function patchFileHandle(): Promise<void> {
  const probe = await openOriginal(__filename, 'r');
  const proto = Object.getPrototypeOf(probe) as Record<string, Fn>;
  await probe.close();
  for (const m of ['write', 'writeFile', 'appendFile', 'sync', 'datasync', 'truncate']) {
    const original = proto[m]!;
    proto[m] = function (this: FileHandle, ...args: unknown[]) {
      const name = `${m} ${names.get(this) ?? '?'}`;
      if (step(name)) {
        const data = args[0];
        // Half of what was to be written reaches the file (never the acknowledgement record: see above).
        if (torn && (m === 'write' || m === 'writeFile' || m === 'appendFile') && typeof data === 'string' && names.get(this) !== 'ack.json') {
          void original.call(this, data.slice(0, Math.floor(data.length / 2)), ...args.slice(1)).then(() => die(`${name} (torn)`));
          return new Promise(() => undefined);
        }
        die(name);
      }
      return original.apply(this, args);
    };
  }
}

async function main(): Promise<void> {
  await patchFileHandle();
  const client = new BillingClient({
    offline: true,
    queueDir: process.env.QUEUE_DIR!,
    license: {
      customerId: process.env.CUSTOMER_ID,
      fingerprint: process.env.FINGERPRINT,
      dir: process.env.LICENSE_DIR,
      trustedKeys: process.env.TRUSTED_KEYS,
      issuer: process.env.ISSUER,
    },
  });
  await client.queued(); // the queue open (and its lock) is not what is tested here
  armed = true;
  const result = process.env.OP === 'export' ? await client.exportUsage(process.env.OUT!) : await client.importReceipt(process.env.RECEIPT!);
  armed = false;
  await client.close();
  process.stdout.write(JSON.stringify({ done: true, steps, result: { seq: result.seq } }) + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
