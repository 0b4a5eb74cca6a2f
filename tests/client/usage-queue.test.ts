/**
 * The durable queue (BillingClient with queueDir) against a fake of POST /api/usage: on disk before
 * it resolves, sent once after an outage and a restart, crash leftovers (torn line, acknowledgement
 * not written), dead letters, limits and the one-writer lock.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BillingClient, QueueFullError, QueueLockedError, type BillingClientOptions } from '../../packages/client';
import { FakeUsageService } from './fake-usage-service';

let svc: FakeUsageService;
let dir: string;
const open: BillingClient[] = [];
const client = (o: Partial<BillingClientOptions> = {}) => {
  const c = new BillingClient({
    baseUrl: svc.url,
    apiKey: 'test-key',
    queueDir: dir,
    backoffBaseMs: 5,
    backoffMaxMs: 50,
    flushIntervalMs: 60_000,
    maxRetries: 2,
    ...o,
  });
  open.push(c);
  return c;
};
const ev = (i: number, metric = 'api_calls') => ({ metric, quantity: 1, idempotency_key: `e-${i}` });
const segments = () => fs.readdirSync(dir).filter((f) => f.startsWith('segment-'));
const deadPid = () => {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(r.stdout.toString());
};

beforeEach(async () => {
  svc = new FakeUsageService();
  await svc.start();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-queue-'));
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
  await svc.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('the durable queue', () => {
  test('when the service is down, then reportUsage resolves with the keys once the events are on disk, and flush sends them once when it is back', async () => {
    const port = svc.port;
    await svc.stop();
    const c = client();
    const receipts = await c.reportUsage([{ metric: 'api_calls', quantity: 2 }, ev(1)]);
    expect(receipts).toEqual([
      { id: null, idempotencyKey: expect.any(String), replayed: null, queued: true },
      { id: null, idempotencyKey: 'e-1', replayed: null, queued: true },
    ]);
    const onDisk = fs
      .readFileSync(path.join(dir, segments()[0]!), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(onDisk.map((e) => e.idempotency_key)).toEqual(receipts.map((r) => r.idempotencyKey));
    expect(onDisk[0].occurred_at).toEqual(expect.any(String));
    await expect(c.flush()).rejects.toThrow(/could not reach/);
    expect(await c.queued()).toMatchObject({ events: 2 });

    await svc.start(port);
    const r = await c.flush();
    expect(r).toMatchObject({ sent: 2, replayed: 0, deadLettered: 0 });
    expect(svc.stored.size).toBe(2);
    expect(await c.queued()).toEqual({ events: 0, bytes: 0 });
  });

  test('when the client restarts while the service is down, then a new client on the directory sends everything once in the background', async () => {
    const port = svc.port;
    await svc.stop();
    const first = client();
    await first.reportUsage(Array.from({ length: 30 }, (_, i) => ev(i)));
    await first.close();
    const second = client({ maxBatch: 7, flushIntervalMs: 20 });
    await second.reportUsage(ev(30));
    await svc.start(port);
    for (let i = 0; i < 200 && (await second.queued()).events > 0; i++) await new Promise((r) => setTimeout(r, 25));
    expect(await second.queued()).toMatchObject({ events: 0 });
    expect(svc.stored.size).toBe(31);
    expect(svc.requests.every((r) => r.length <= 7)).toBe(true);
    expect(svc.requests.flat().length).toBe(31);
  });

  test('when the acknowledgement was not written before a crash, then the events are sent again with the same keys and counted once', async () => {
    const c = client();
    await c.reportUsage([ev(1), ev(2)]);
    await c.flush();
    await c.close();
    // What a crash between the service's answer and the acknowledgement leaves: the old ack file.
    fs.rmSync(path.join(dir, 'ack.json'));
    const again = client();
    const r = await again.flush();
    expect(r).toMatchObject({ sent: 2, replayed: 2 });
    expect(svc.stored.size).toBe(2);
  });

  test('when the last line was torn by a crash, then it is ignored and the file is cut back before the next append', async () => {
    const c = client();
    await c.reportUsage([ev(1)]);
    await c.close();
    const seg = path.join(dir, segments()[0]!);
    fs.appendFileSync(seg, '{"metric":"api_calls","quantity":1,"idempo');
    const again = client();
    await again.reportUsage(ev(2));
    expect(
      fs
        .readFileSync(seg, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).idempotency_key),
    ).toEqual(['e-1', 'e-2']);
    await again.flush();
    expect([...svc.stored.keys()]).toEqual(['e-1', 'e-2']);
  });

  test('when a batch holds events the service refuses (422 by index), then only those go to the dead-letter file and the rest are sent', async () => {
    const c = client();
    await c.reportUsage([ev(1), ev(2, 'bad_metric'), ev(3), ev(4, 'bad_metric'), ev(5)]);
    const r = await c.flush();
    expect(r).toMatchObject({ sent: 3, deadLettered: 2 });
    expect([...svc.stored.keys()].sort()).toEqual(['e-1', 'e-3', 'e-5']);
    const dead = await c.deadLetters();
    expect(dead.map((d) => d.event?.idempotency_key)).toEqual(['e-2', 'e-4']);
    expect(dead[0]).toMatchObject({ status: 422, code: 'VALIDATION_FAILED', details: expect.any(Array) });
    expect(await c.queued()).toMatchObject({ events: 0 });
  });

  test('when an event reuses a key with another body (409 names no event), then it is found by halving, dead-lettered, and the others are sent', async () => {
    const c = client();
    await c.reportUsage(ev(3));
    await c.flush();
    await c.reportUsage([ev(1), ev(2), { ...ev(3), quantity: 9 }, ev(4), ev(5), ev(6)]);
    const r = await c.flush();
    expect(r).toMatchObject({ sent: 5, deadLettered: 1 });
    expect((await c.deadLetters()).map((d) => [d.event?.idempotency_key, d.code])).toEqual([['e-3', 'IDEMPOTENCY_CONFLICT']]);
    expect(svc.stored.size).toBe(6);
  });

  test('when the queue holds as many events or bytes as allowed, then QueueFullError and nothing of the call is queued', async () => {
    await svc.stop();
    const c = client({ queueMaxEvents: 3 });
    await c.reportUsage([ev(1), ev(2)]);
    const err = await c.reportUsage([ev(3), ev(4)]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QueueFullError);
    expect((err as QueueFullError).queued).toMatchObject({ events: 2, maxEvents: 3 });
    expect(await c.queued()).toMatchObject({ events: 2 });
    await c.close();
    const small = client({ queueMaxBytes: 100 });
    await expect(small.reportUsage({ metric: 'api_calls', quantity: 1, idempotency_key: 'x'.repeat(200) })).rejects.toBeInstanceOf(QueueFullError);
  });

  test('when a second client opens a directory a live client holds, then QueueLockedError; a lock left by a dead process is taken over', async () => {
    const c = client();
    await c.reportUsage(ev(1));
    await expect(client().reportUsage(ev(2))).rejects.toBeInstanceOf(QueueLockedError);
    await c.close();

    fs.writeFileSync(path.join(dir, 'lock'), `${deadPid()}\n`);
    const next = client();
    await next.reportUsage(ev(3));
    expect(fs.readFileSync(path.join(dir, 'lock'), 'utf8').trim()).toBe(String(process.pid));
    await next.close();
    expect(fs.existsSync(path.join(dir, 'lock'))).toBe(false);

    fs.writeFileSync(path.join(dir, 'lock'), `${process.ppid}\n`);
    const err = await client()
      .reportUsage(ev(4))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QueueLockedError);
    expect((err as QueueLockedError).pid).toBe(process.ppid);
  });

  test('when a process died while taking the lock, then its pid file and set-aside lock are removed by the next owner; a live process’s are kept', async () => {
    const dead = deadPid();
    const left = [`lock.${dead}.0123456789ab.tmp`, `lock.steal.${dead}.0123456789ab.dead`];
    const live = `lock.${process.ppid}.0123456789ab.tmp`;
    for (const f of [...left, live]) fs.writeFileSync(path.join(dir, f), `${dead}\n`, { mode: 0o600 });
    const c = client();
    await c.reportUsage(ev(1));
    const names = fs.readdirSync(dir);
    for (const f of left) expect(names).not.toContain(f);
    expect(names).toContain(live);
  });

  test('when close is called during a send, then it waits for the answer and the batch is acknowledged', async () => {
    svc.delayMs = 300;
    const c = client({ flushIntervalMs: 10 });
    await c.reportUsage([ev(1), ev(2)]);
    await new Promise((r) => setTimeout(r, 100));
    await c.close();
    expect(svc.stored.size).toBe(2);
    const next = client();
    expect(await next.queued()).toMatchObject({ events: 0 });
  });

  test('when everything in a large segment is acknowledged, then a new segment replaces it', async () => {
    const c = client();
    await c.reportUsage(Array.from({ length: 9000 }, (_, i) => ({ ...ev(i), idempotency_key: `${'k'.repeat(100)}-${i}` })));
    await c.flush();
    const [seg] = segments();
    expect(segments()).toHaveLength(1);
    expect(fs.statSync(path.join(dir, seg!)).size).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'ack.json'), 'utf8'))).toMatchObject({ segment: 1, offset: 0 });
    expect(svc.stored.size).toBe(9000);
  });
});
