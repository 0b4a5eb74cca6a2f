/**
 * Retention of raw usage events (src/modules/usage-retention): an old month with an unforwarded
 * event or an open period is kept (and the controls, once fixed, are dropped); an eligible one is
 * archived, verified, dropped and audited; reports keep showing it from the daily totals; a restore
 * brings every event back once; a tampered archive is refused; an interrupted run is finished by the
 * next. On a database of its own: retention acts on every customer.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import request from 'supertest';
import { expectError } from '../helpers/envelope';
import { createCustomer, insertInvoice, subscribe, type CreatedCustomer } from '../helpers/factories';
import { createIsolatedTestApp } from '../helpers/fresh-database';
import { dailyOf, retentionDeps, seedMonth, tableState } from '../helpers/usage-retention';
import { runUsageRetention } from '../../src/modules/usage-retention/usage-retention-service';

let iso: Awaited<ReturnType<typeof createIsolatedTestApp>>;
let dir: string;
let a: CreatedCustomer;
let b: CreatedCustomer;
const admin = () => ({ Authorization: `Bearer ${iso.t.adminToken}` });

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'usage-archives-'));
  iso = await createIsolatedTestApp('usage_retention', { USAGE_ARCHIVE_DIR: dir, USAGE_METRICS: 'api_calls,storage_gb' });
  a = await createCustomer(iso.t);
  b = await createCustomer(iso.t);
});
afterAll(async () => {
  await iso.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const run = (over: Parameters<typeof retentionDeps>[2] = {}) => runUsageRetention(retentionDeps(iso.t, dir, over));
const gauge = async (reason: string) => {
  const text = await iso.t.c.metrics.registry.getSingleMetricAsString('usage_partitions_retained');
  return Number(new RegExp(`reason="${reason}"} (\\d+)`).exec(text)?.[1] ?? 'NaN');
};

describe('months that must be kept', () => {
  test('when an old month holds an event not yet forwarded, then it is kept (reason unforwarded); once sent, the next run drops it', async () => {
    await seedMonth(iso.t.db, '2024-01', [a.id], 20);
    // One event still to forward: its outbox row says pending.
    await iso.t.db.raw(
      `insert into usage_outbox (occurred_at, id, customer_id, occurred_month, state, metric, quantity, idempotency_key, next_attempt_at)
       select occurred_at, id, customer_id, occurred_month, 'pending', metric, quantity, idempotency_key, now() from usage_events_2024_01 where idempotency_key = 'seed-2024-01-7'`,
    );
    let gaugeSeen = -1;
    const first = await runUsageRetention({
      ...retentionDeps(iso.t, dir),
      onRetained: (counts) => void (gaugeSeen = counts.unforwarded),
    });
    expect(first!.kept).toEqual([{ month: '2024-01', reason: 'unforwarded' }]);
    expect(gaugeSeen).toBe(1);
    expect(await tableState(iso.t.db, '2024-01')).toBe('attached');
    expect(fs.existsSync(path.join(dir, 'usage_events_2024_01.ndjson.gz'))).toBe(false);

    // Sent: nothing of it is owed to Stripe any more.
    await iso.t.db.raw(`update usage_outbox set state = 'sent', sent_at = now(), next_attempt_at = null where idempotency_key = 'seed-2024-01-7'`);
    const second = await run();
    expect(second).toEqual({ dropped: ['2024-01'], kept: [], finished: [] });
    expect(await tableState(iso.t.db, '2024-01')).toBe('gone');
  });

  test('when a late-usage true-up of the month is not billed yet, then the month is kept; once sent, it goes', async () => {
    await seedMonth(iso.t.db, '2024-02', [a.id], 10);
    const id = '01900000-0000-7000-8000-0000000000a1';
    await iso.t.db.raw(
      `insert into usage_true_ups (id, customer_id, bundle_id, metric, quantity, events, occurred_from, occurred_to, state)
       values (?, ?, gen_random_uuid(), 'api_calls', 3, 1, '2024-02-10T00:00:00Z', '2024-02-10T00:00:00Z', 'pending')`,
      [id, a.id],
    );
    expect((await run())!.kept).toEqual([{ month: '2024-02', reason: 'unforwarded' }]);
    await iso.t.db.raw(`update usage_true_ups set state = 'sent' where id = ?`, [id]);
    expect((await run())!.dropped).toEqual(['2024-02']);
  });

  test('when a subscription or a draft invoice has a period touching the month, then it is kept (open_period); once closed, it goes', async () => {
    await seedMonth(iso.t.db, '2024-03', [b.id], 10);
    const s = await subscribe(iso.t, { customer: b });
    await iso.t
      .db('subscriptions')
      .where({ id: s.id })
      .update({ current_period_start: new Date('2024-02-20T00:00:00Z'), current_period_end: new Date('2024-03-20T00:00:00Z') });
    const invoice = await insertInvoice(iso.t, b.id, { status: 'draft', created: new Date('2024-03-31T12:00:00Z') });

    const kept = await runUsageRetention({ ...retentionDeps(iso.t, dir) });
    expect(kept!.kept).toEqual([{ month: '2024-03', reason: 'open_period' }]);

    await iso.t.db('subscriptions').where({ id: s.id }).update({ status: 'canceled' });
    expect((await run())!.kept).toEqual([{ month: '2024-03', reason: 'open_period' }]);
    await iso.t.db('invoices').where({ id: invoice.id }).update({ status: 'paid' });
    expect((await run())!.dropped).toEqual(['2024-03']);
  });

  test('when no USAGE_ARCHIVE_DIR is set, then old months are kept (no_archive_dir) unless USAGE_RETENTION_WITHOUT_ARCHIVE is on', async () => {
    await seedMonth(iso.t.db, '2024-04', [a.id], 10);
    const without = retentionDeps(iso.t, undefined);
    expect((await runUsageRetention(without))!.kept).toEqual([{ month: '2024-04', reason: 'no_archive_dir' }]);
    expect(await tableState(iso.t.db, '2024-04')).toBe('attached');
    const r = await runUsageRetention({ ...without, settings: { ...without.settings, withoutArchive: true } });
    expect(r!.dropped).toEqual(['2024-04']);
    expect(await iso.t.db('usage_archives').where({ month: '2024-04-01' }).first()).toMatchObject({ file: null, sha256: null, dropped_at: expect.any(Date) });
  });

  test('when the app runs retention, then usage_partitions_retained says how many old months are kept and why', async () => {
    await seedMonth(iso.t.db, '2024-05', [a.id], 5);
    const invoice = await insertInvoice(iso.t, a.id, { status: 'open', created: new Date('2024-05-31T00:00:00Z') });
    // The app's own service (its settings, its gauge; Stripe off in tests).
    expect((await iso.t.c.usageRetention.runOnce())!.kept).toEqual([{ month: '2024-05', reason: 'open_period' }]);
    expect(await gauge('open_period')).toBe(1);
    expect(await gauge('unforwarded')).toBe(0);
    await iso.t.db('invoices').where({ id: invoice.id }).update({ status: 'paid' });
    expect((await iso.t.c.usageRetention.runOnce())!.dropped).toEqual(['2024-05']);
    expect(await gauge('open_period')).toBe(0);
  }, 30_000);
});

describe('an eligible month', () => {
  const month = '2024-07';
  /** Ranges over the month: whole days, ragged edges with no event in the part cut off, and the next month. */
  const ranges = [
    ['2024-07-01', '2024-08-01'],
    ['2024-07-01T01:00:00Z', '2024-08-01T01:00:00Z'],
    ['2024-06-29T12:00:00Z', '2024-07-29T06:00:00Z'],
  ];
  const reports = async () => {
    const out: unknown[] = [];
    for (const [from, to] of ranges) {
      for (const by of ['customer', 'day']) {
        const res = await request(iso.t.app).get('/api/reports/usage').query({ from, to, group_by: by }).set(admin());
        expect(res.status).toBe(200);
        out.push(res.body);
      }
      for (const c of [a, b]) {
        const res = await request(iso.t.app).get(`/api/customers/${c.id}/usage`).query({ from, to }).set(admin());
        expect(res.status).toBe(200);
        out.push(res.body.totals);
      }
    }
    return out;
  };
  let before: unknown[];
  let events: unknown[];

  beforeAll(async () => {
    await seedMonth(iso.t.db, '2024-06', [a.id, b.id], 50);
    await seedMonth(iso.t.db, month, [a.id, b.id], 200);
    before = await reports();
    events = (
      await iso.t.db.raw(
        `select id, idempotency_key, occurred_at::text, usage_uuid_time(id)::text as received_at, quantity::text, state, request_hash from usage_events_2024_07 order by id`,
      )
    ).rows;
  });

  test('when retention runs, then it is archived (data file and manifest), verified, recorded, dropped, and both steps are audited', async () => {
    const daily = await dailyOf(iso.t.db, month);
    const r = await run();
    expect(r!.dropped).toEqual(['2024-06', month]);
    expect(await tableState(iso.t.db, month)).toBe('gone');
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'usage_events_2024_07.manifest.json'), 'utf8'));
    expect(manifest).toMatchObject({ format: 'usage-archive/1', month, partition: 'usage_events_2024_07', rows: 200 });
    expect(manifest.totals.reduce((n: number, t: { events: number }) => n + t.events, 0)).toBe(200);
    expect(fs.statSync(path.join(dir, 'usage_events_2024_07.ndjson.gz')).size).toBe(manifest.bytes);
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('.'))).toEqual([]);
    expect(await iso.t.db('usage_archives').where({ month: '2024-07-01' }).first()).toMatchObject({
      rows: '200',
      sha256: manifest.sha256,
      file: 'usage_events_2024_07.ndjson.gz',
      archived_at: expect.any(Date),
      verified_at: expect.any(Date),
      dropped_at: expect.any(Date),
      restored_at: null,
    });
    const audit = await iso.t.db('audit_log').where({ target_id: month }).orderBy('id');
    expect(audit.map((x) => [x.actor, x.action, x.outcome])).toEqual([
      ['system', 'usage.archive', 'success'],
      ['system', 'usage.partition_drop', 'success'],
    ]);
    expect(audit[0]!.details).toMatchObject({ rows: 200, sha256: manifest.sha256 });
    // The daily totals are kept.
    expect(await dailyOf(iso.t.db, month)).toEqual(daily);
  });

  test('when its raw events are gone, then reports and customer usage over it equal what they were before the drop', async () => {
    expect(await reports()).toEqual(before);
  });

  test('when a ragged edge cuts a day of a dropped month, then that day is counted whole (exact to the day)', async () => {
    const get = (from: string, to: string) => request(iso.t.app).get('/api/reports/usage').query({ from, to, group_by: 'day' }).set(admin());
    const ragged = await get('2024-07-02T12:00:00Z', '2024-07-04T12:00:00Z');
    const whole = await get('2024-07-02', '2024-07-05');
    expect(ragged.body.rows).toEqual(whole.body.rows);
    expect(ragged.body.rows.length).toBeGreaterThan(0);
  });

  test('when the archives are listed and verified through the API, then the month is there, dropped, and verifies', async () => {
    const list = await request(iso.t.app).get('/api/usage/archives').set(admin());
    expect(list.status).toBe(200);
    expect(list.body.archive_dir_set).toBe(true);
    expect(list.body.data.find((x: { month: string }) => x.month === month)).toMatchObject({ raw_events: 'dropped', rows: 200, file_complete: true });
    const v = await request(iso.t.app).post(`/api/usage/archives/${month}/verify`).set(admin());
    expect(v.status).toBe(200);
    expect(v.body).toMatchObject({ month, verified: true, partition_checked: false, rows: 200 });
  });

  test('when it is restored, then every event is back once, as it was, and usage_daily is untouched; a second restore adds nothing', async () => {
    const daily = await dailyOf(iso.t.db, month);
    const first = await request(iso.t.app).post(`/api/usage/archives/${month}/restore`).set(admin()).send({});
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ month, rows: 200, inserted: 200, keep_until: null });
    const again = await request(iso.t.app).post(`/api/usage/archives/${month}/restore`).set(admin()).send({});
    expect(again.body).toEqual({ month, rows: 200, inserted: 0, keep_until: null });
    const back = (
      await iso.t.db.raw(
        `select id, idempotency_key, occurred_at::text, usage_uuid_time(id)::text as received_at, quantity::text, state, request_hash from usage_events_2024_07 order by id`,
      )
    ).rows;
    expect(back).toEqual(events);
    expect(await dailyOf(iso.t.db, month)).toEqual(daily);
    expect(await reports()).toEqual(before);
    const audit = await iso.t.db('audit_log').where({ target_id: month, action: 'usage.archive_restore' });
    expect(audit.map((x) => [x.actor, x.outcome, x.details.inserted])).toEqual([
      ['admin', 'success', 200],
      ['admin', 'success', 0],
    ]);
    // With the partition back, verify compares its rows too.
    const v = await request(iso.t.app).post(`/api/usage/archives/${month}/verify`).set(admin());
    expect(v.body.partition_checked).toBe(true);
  });

  test('when a restored month was restored without keep, then the next run drops it again; restored with keep_days, it is kept', async () => {
    expect((await run())!.dropped).toEqual([month]);
    expect(await tableState(iso.t.db, month)).toBe('gone');
    const kept = await request(iso.t.app).post(`/api/usage/archives/${month}/restore`).set(admin()).send({ keep_days: 30 });
    expect(kept.body).toMatchObject({ inserted: 200, keep_until: expect.any(String) });
    expect((await run())!.kept).toEqual([{ month, reason: 'restored' }]);
    expect(await tableState(iso.t.db, month)).toBe('attached');
    // Past the keep, it goes.
    expect((await run({ now: () => Date.now() + 31 * 86_400_000 }))!.dropped).toEqual([month]);
    expect(await reports()).toEqual(before);
  });

  test('when a byte of the archive is changed, then verify and restore refuse it with the reason; put back, it verifies', async () => {
    const file = path.join(dir, 'usage_events_2024_07.ndjson.gz');
    const original = fs.readFileSync(file);
    const tampered = Buffer.from(original);
    tampered[Math.floor(tampered.length / 2)]! ^= 0x01;
    fs.writeFileSync(file, tampered);
    const v = await request(iso.t.app).post(`/api/usage/archives/${month}/verify`).set(admin());
    expectError(v, 409, 'CONFLICT');
    expect(v.body.error.message).toMatch(/^the archive of 2024-07 does not verify: the file's sha256 is [0-9a-f]{64}, its manifest says/);
    expectError(await request(iso.t.app).post(`/api/usage/archives/${month}/restore`).set(admin()).send({}), 409, 'CONFLICT');
    expect(await tableState(iso.t.db, month)).toBe('gone');
    fs.writeFileSync(file, original);
    expect((await request(iso.t.app).post(`/api/usage/archives/${month}/verify`).set(admin())).status).toBe(200);
  });

  test('when the month is not YYYY-MM, then 422; when no archive of it exists, then 404', async () => {
    for (const bad of ['2024-13', '2024-7', 'july', '2024-07-01']) {
      expectError(await request(iso.t.app).post(`/api/usage/archives/${bad}/verify`).set(admin()), 422, 'VALIDATION_FAILED');
      expectError(await request(iso.t.app).post(`/api/usage/archives/${bad}/restore`).set(admin()).send({}), 422, 'VALIDATION_FAILED');
    }
    expectError(await request(iso.t.app).post('/api/usage/archives/1999-01/verify').set(admin()), 404, 'NOT_FOUND');
    expectError(await request(iso.t.app).post('/api/usage/archives/1999-01/restore').set(admin()).send({}), 404, 'NOT_FOUND');
  });
});

describe('an interrupted run', () => {
  test.each([
    ['archived', 'attached'],
    ['detached', 'detached'],
  ])(
    'when a run stops right after the step "%s", then the month is %s, and the next run finishes it: archive verifies, nothing lost or doubled',
    async (step, left) => {
      const month = step === 'archived' ? '2024-09' : '2024-10';
      await seedMonth(iso.t.db, month, [a.id, b.id], 120);
      const daily = await dailyOf(iso.t.db, month);
      const keys = (await iso.t.db.raw(`select idempotency_key from ?? order by 1`, [`usage_events_${month.replace('-', '_')}`])).rows.map(
        (r: { idempotency_key: string }) => r.idempotency_key,
      );
      await expect(
        run({
          faults: {
            after: (s) => {
              if (s === step) throw new Error(`stopped after ${s}`);
            },
          },
        }),
      ).rejects.toThrow(`stopped after ${step}`);
      expect(await tableState(iso.t.db, month)).toBe(left);

      const next = await run();
      expect([...next!.dropped, ...next!.finished]).toEqual([month]);
      expect(await tableState(iso.t.db, month)).toBe('gone');
      const v = await request(iso.t.app).post(`/api/usage/archives/${month}/verify`).set(admin());
      expect(v.status).toBe(200);
      expect(v.body.rows).toBe(120);
      const archived = zlibLines(path.join(dir, `usage_events_${month.replace('-', '_')}.ndjson.gz`)).map((e) => e.idempotency_key as string);
      expect(archived.sort()).toEqual(keys);
      expect(await dailyOf(iso.t.db, month)).toEqual(daily);
      const drops = await iso.t.db('audit_log').where({ target_id: month, action: 'usage.partition_drop' });
      expect(drops).toHaveLength(1);
    },
  );

  test('when an archive file has no manifest (a run stopped while writing it), then the next run writes it again', async () => {
    const month = '2024-11';
    await seedMonth(iso.t.db, month, [a.id], 30);
    fs.writeFileSync(path.join(dir, 'usage_events_2024_11.ndjson.gz'), 'half a file');
    const list = await request(iso.t.app).get('/api/usage/archives').set(admin());
    expect(list.body.data.find((x: { month: string }) => x.month === month)).toMatchObject({ file_complete: false, raw_events: 'present' });
    expectError(await request(iso.t.app).post(`/api/usage/archives/${month}/verify`).set(admin()), 409, 'CONFLICT');
    expect((await run())!.dropped).toEqual([month]);
    expect((await request(iso.t.app).post(`/api/usage/archives/${month}/verify`).set(admin())).body.rows).toBe(30);
  });
});

function zlibLines(file: string): Record<string, unknown>[] {
  const text = gunzipSync(fs.readFileSync(file)).toString('utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
