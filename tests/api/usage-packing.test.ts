/**
 * Settled months, packed (src/modules/usage-partitions/packing.ts): once a month can take no event
 * online, the partition maintenance moves its events into usage_event_packs. Every event is kept
 * once, as it was; reports, customer usage and the forwarding report read the same; a late write
 * (a usage bundle's) finds a packed key as a replay or a conflict and never stores it twice, even
 * while a packing runs; a month with an event still owed to Stripe is not packed; retention archives,
 * drops and restores a packed month; the migration's down puts the events back as rows.
 * On a database of its own: maintenance and retention act on every customer.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import pino from 'pino';
import request from 'supertest';
import { createCustomer, type CreatedCustomer } from '../helpers/factories';
import { createIsolatedTestApp } from '../helpers/fresh-database';
import { retentionDeps, seedMonth } from '../helpers/usage-retention';
import { createKnex } from '../../src/db/knex';
import { migrationConfig } from '../../src/db/migration-source';
import { maintainUsagePartitions } from '../../src/modules/usage-partitions/maintenance';
import { monthEventsSql } from '../../src/modules/usage-partitions/packing';
import { createUsagePartitionsJob } from '../../src/modules/usage-partitions/partitions-job';
import { createUsageRepository, WriteRefusedError, type EventToWrite } from '../../src/modules/usage/usage-repository';
import { runUsageRetention } from '../../src/modules/usage-retention/usage-retention-service';

let iso: Awaited<ReturnType<typeof createIsolatedTestApp>>;
let dir: string;
let a: CreatedCustomer;
let b: CreatedCustomer;
const admin = () => ({ Authorization: `Bearer ${iso.t.adminToken}` });
const repo = createUsageRepository();

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'usage-packing-'));
  iso = await createIsolatedTestApp('usage_packing', { USAGE_ARCHIVE_DIR: dir, USAGE_METRICS: 'api_calls,storage_gb' });
  a = await createCustomer(iso.t);
  b = await createCustomer(iso.t);
});
afterAll(async () => {
  await iso.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const gauge = async (name: string) => Number(/ (\d+)$/m.exec(await iso.t.c.metrics.registry.getSingleMetricAsString(name))?.[1] ?? 'NaN');
const pack = () => maintainUsagePartitions(iso.t.db, { audit: iso.t.c.audit, now: new Date(), ahead: 1, pack: true });
const table = (month: string) => `usage_events_${month.replace('-', '_')}`;

/** Every event of the month, rows and packs alike, as stored (times to the microsecond, fingerprints in hex). */
async function eventsOf(month: string) {
  const { rows } = await iso.t.db.raw<{ rows: Record<string, string>[] }>(
    `select id::text, customer_id::text, metric, quantity::text, to_char(occurred_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') as occurred_at,
            idempotency_key, encode(request_hash, 'hex') as request_hash, state
       from (${monthEventsSql(`"${table(month)}"`, '?')}) e order by id`,
    [`${month}-01`, `${month}-01`],
  );
  return rows;
}

const partitionFor = async (month: string) => {
  const next = new Date(Date.UTC(Number(month.slice(0, 4)), Number(month.slice(5, 7)), 1)).toISOString().slice(0, 10);
  await iso.t.db.raw(`create table ?? partition of usage_events for values from ('${month}-01') to ('${next}')`, [table(month)]);
};

/** Where the month's events are: rows in its partition, events in its packs. */
async function placeOf(month: string) {
  const rows = Number((await iso.t.db.raw<{ rows: { n: string }[] }>(`select count(*)::text as n from ??`, [table(month)])).rows[0]!.n);
  const packed = Number(
    (
      await iso.t.db.raw<{ rows: { n: string }[] }>(
        `select coalesce(sum(events), 0)::text as n from usage_event_packs where day >= ?::date and day < (?::date + interval '1 month')::date`,
        [`${month}-01`, `${month}-01`],
      )
    ).rows[0]!.n,
  );
  return { rows, packed };
}

/** Reports over ranges of the month whose ragged edges cut days with events, all customers and each. */
async function reports(month: string) {
  const ranges = [
    [`${month}-01`, `${month}-28`],
    [`${month}-03T07:31:00Z`, `${month}-19T13:17:45Z`],
    [`${month}-05T11:00:00Z`, `${month}-05T17:00:00Z`],
  ];
  const out: unknown[] = [];
  for (const [from, to] of ranges) {
    for (const by of ['customer', 'day']) {
      const res = await request(iso.t.app).get('/api/reports/usage').query({ from, to, group_by: by }).set(admin());
      expect([res.status, res.body.error?.message]).toEqual([200, undefined]);
      out.push(res.body);
    }
    for (const c of [a, b]) {
      const res = await request(iso.t.app).get(`/api/customers/${c.id}/usage`).query({ from, to }).set(admin());
      expect(res.status).toBe(200);
      out.push(res.body.totals);
    }
  }
  return out;
}

async function forwardingCounts() {
  const res = await request(iso.t.app).get('/api/reports/forwarding').set(admin());
  expect(res.status).toBe(200);
  return { local: res.body.local, sent: res.body.sent };
}

/** Late events of the month (a usage bundle's), through the one write, at the real time. */
const late = (month: string, n: number, prefix: string, over: Partial<EventToWrite> = {}): EventToWrite[] =>
  Array.from({ length: n }, (_, i) => ({
    customerId: i % 2 ? b.id : a.id,
    metric: i % 3 ? 'api_calls' : 'storage_gb',
    quantity: `${(i % 5) + 1}.25`,
    occurredAt: new Date(Date.parse(`${month}-02T00:00:00Z`) + i * 3_600_123),
    idempotencyKey: `${prefix}-${i}`,
    ...over,
  }));

describe('a settled month', () => {
  const month = '2024-03';
  test('when it is packed, then every event is kept once as it was, reports and the forwarding report read the same, the partition is empty and smaller, and the packing is audited', async () => {
    await seedMonth(iso.t.db, month, [a.id, b.id], 300);
    // Every state an event can be in.
    await iso.t.db.raw(`update ?? set state = 'l' where idempotency_key like '%0'`, [table(month)]);
    await iso.t.db.raw(`update ?? set state = 't' where idempotency_key like '%1'`, [table(month)]);
    const events = await eventsOf(month);
    const before = await reports(month);
    const forwarding = await forwardingCounts();
    expect(events).toHaveLength(300);
    expect(forwarding.local).toBeGreaterThan(0);
    expect(await placeOf(month)).toEqual({ rows: 300, packed: 0 });

    const run = await pack();
    expect(run.packed).toEqual([{ month: `${month}-01`, events: 300, bytesBefore: expect.any(Number), bytesAfter: expect.any(Number) }]);
    expect(run.packed[0]!.bytesAfter).toBeLessThan(run.packed[0]!.bytesBefore);
    expect(await placeOf(month)).toEqual({ rows: 0, packed: 300 });
    expect(await eventsOf(month)).toEqual(events);
    expect(await reports(month)).toEqual(before);
    expect(await forwardingCounts()).toEqual(forwarding);
    const audit = await iso.t.db('audit_log').where({ action: 'usage.month_pack', target_id: month });
    expect(audit.map((r) => [r.actor, r.outcome, r.details.events])).toEqual([['system', 'success', 300]]);
    // Nothing left to pack: the next run packs nothing.
    expect((await pack()).packed).toEqual([]);
  });
});

describe('a late write into a packed month', () => {
  const month = '2024-04';
  test('when a packed event is sent again, then it is a replay with its id; with another body, a conflict; a new key is stored beside the packs, and packed by the next run', async () => {
    await partitionFor(month);
    const first = late(month, 40, 'apr');
    const stored = await repo.write(iso.t.db, first, 'local', Date.now());
    expect(stored.every((o) => o.created && !o.conflict)).toBe(true);
    expect((await pack()).packed.map((p) => [p.month, p.events])).toEqual([[`${month}-01`, 40]]);
    const daily = await iso.t.db('usage_daily').where('day', '>=', `${month}-01`).andWhere('day', '<', `${month}-28`).sum({ q: 'quantity', n: 'events' });

    // The same events again: each a replay of the packed one.
    const again = await repo.write(iso.t.db, first, 'local', Date.now());
    expect(again.map((o) => [o.id, o.created, o.conflict])).toEqual(stored.map((o) => [o.id, false, false]));
    // Same key, another quantity: a conflict, nothing stored.
    const [conflict] = await repo.write(iso.t.db, [{ ...first[3]!, quantity: '999' }], 'local', Date.now());
    expect(conflict).toMatchObject({ id: stored[3]!.id, created: false, conflict: true });
    // All or nothing: a new key beside a conflicting one is refused with it.
    await expect(
      repo.writeAllOrNothing(iso.t.db, [...late(month, 1, 'apr-new'), { ...first[5]!, metric: 'api_calls', quantity: '0.5' }], 'local', Date.now()),
    ).rejects.toBeInstanceOf(WriteRefusedError);
    expect(await placeOf(month)).toEqual({ rows: 0, packed: 40 });
    // The control: the new key alone is stored, as a row beside the packs.
    const [fresh] = await repo.write(iso.t.db, late(month, 1, 'apr-new'), 'local', Date.now());
    expect(fresh).toMatchObject({ created: true, conflict: false });
    expect(await placeOf(month)).toEqual({ rows: 1, packed: 40 });
    const daily2 = await iso.t.db('usage_daily').where('day', '>=', `${month}-01`).andWhere('day', '<', `${month}-28`).sum({ q: 'quantity', n: 'events' });
    expect([Number(daily2[0]!.q) - Number(daily[0]!.q), Number(daily2[0]!.n) - Number(daily[0]!.n)]).toEqual([1.25, 1]);

    // The next run packs it too; it is then a replay like the others.
    expect((await pack()).packed.map((p) => [p.month, p.events])).toEqual([[`${month}-01`, 1]]);
    expect(await placeOf(month)).toEqual({ rows: 0, packed: 41 });
    const [replay] = await repo.write(iso.t.db, late(month, 1, 'apr-new'), 'local', Date.now());
    expect(replay).toMatchObject({ id: fresh!.id, created: false, conflict: false });
    const keys = (await eventsOf(month)).map((e) => `${e.customer_id}/${e.idempotency_key}`);
    expect(new Set(keys).size).toBe(41);
  });
});

describe('packing and late writes at the same time', () => {
  const month = '2024-05';
  const waitingAdvisory = async () =>
    Number((await iso.t.db.raw<{ rows: { n: string }[] }>(`select count(*)::text as n from pg_locks where locktype = 'advisory' and not granted`)).rows[0]!.n);
  const until = async (check: () => Promise<boolean>) => {
    for (let i = 0; i < 100 && !(await check()); i++) await new Promise((r) => setTimeout(r, 50));
    return check();
  };

  test('when a late write is under way, then the packing waits for it and packs its event too; when a packing holds the month, a late write waits and then finds the packed key', async () => {
    await partitionFor(month);
    await repo.write(iso.t.db, late(month, 20, 'may'), 'local', Date.now());

    // A bundle's write, not committed yet, holds the month's lock shared.
    let commit!: () => void;
    const held = new Promise<void>((r) => (commit = r));
    const writing = iso.t.db.transaction(async (trx) => {
      const out = await repo.writeInTransaction(trx, late(month, 1, 'may-held'), 'local', Date.now());
      await held;
      return out;
    });
    await until(async () => (await placeOf(month)).rows >= 20);
    const packing = pack();
    expect(await until(async () => (await waitingAdvisory()) === 1)).toBe(true);
    commit();
    const [written] = await writing;
    expect((await packing).packed.map((p) => [p.month, p.events])).toEqual([[`${month}-01`, 21]]);

    // The packing's lock held (as a packing holds it): a late retry waits, then finds the key in the packs.
    await iso.t.db.transaction(async (trx) => {
      await trx.raw(`select pg_advisory_xact_lock(hashtext('usage-pack'), 202405)`);
      const retry = repo.write(iso.t.db, late(month, 1, 'may-held'), 'local', Date.now());
      expect(await until(async () => (await waitingAdvisory()) === 1)).toBe(true);
      await trx.commit();
      const [r] = await retry;
      expect(r).toMatchObject({ id: written!.id, created: false, conflict: false });
    });
  });

  test('when a late write holds the month past lock_timeout, then the round leaves the month as it was and the next round packs it', async () => {
    const month2 = '2024-08';
    await partitionFor(month2);
    await repo.write(iso.t.db, late(month2, 12, 'aug'), 'local', Date.now());
    // Another instance's write (a pool of its own), not committed yet.
    const other = createKnex({ url: iso.url, poolMax: 1 });
    let commit!: () => void;
    const held = new Promise<void>((r) => (commit = r));
    const writing = other.transaction(async (trx) => {
      await repo.writeInTransaction(trx, late(month2, 1, 'aug-held'), 'local', Date.now());
      await held;
    });
    await until(async () => (await waitingAdvisory()) === 0 && (await placeOf(month2)).rows === 12);
    const blocked = await maintainUsagePartitions(iso.t.db, { audit: iso.t.c.audit, now: new Date(), ahead: 1, pack: true, lockTimeoutMs: 300 });
    expect(blocked.packed).toEqual([]);
    expect(await placeOf(month2)).toEqual({ rows: 12, packed: 0 });
    commit();
    await writing;
    await other.destroy();
    // The control: with the write committed, the same round packs the month, its event too.
    expect((await pack()).packed.map((p) => [p.month, p.events])).toEqual([[`${month2}-01`, 13]]);
  });

  test('when retries and new keys race a packing, then every key is stored once, and each new key created once', async () => {
    const events = late(month, 30, 'race');
    const writes: Promise<{ created: boolean; key: string }[]>[] = [];
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < events.length; i += 3) {
        writes.push(
          repo
            .write(iso.t.db, events.slice(i, i + 3), 'local', Date.now())
            .then((o) => o.map((x, j) => ({ created: x.created, key: events[i + j]!.idempotencyKey }))),
        );
      }
      if (round === 1) writes.push(pack().then(() => []));
      writes.push(repo.write(iso.t.db, late(month, 20, 'may'), 'local', Date.now()).then((o) => o.map((x) => ({ created: x.created, key: 'old' }))));
    }
    const outcomes = (await Promise.all(writes)).flat();
    const created = outcomes.filter((o) => o.created).map((o) => o.key);
    expect(created.sort()).toEqual(events.map((e) => e.idempotencyKey).sort());
    // Whatever was left as rows is packed next; each key once either way.
    await pack();
    const keys = (await eventsOf(month)).map((e) => `${e.customer_id}/${e.idempotency_key}`);
    expect(keys).toHaveLength(51);
    expect(new Set(keys).size).toBe(51);
    expect(await placeOf(month)).toEqual({ rows: 0, packed: 51 });
  });
});

describe('a month with an event still owed to Stripe', () => {
  const month = '2024-06';
  test('when an event waits for Stripe, then the month is not packed (named waiting); once it is sent, it is packed', async () => {
    await seedMonth(iso.t.db, month, [a.id, b.id], 10);
    await iso.t.db.raw(
      `insert into usage_outbox (occurred_at, id, customer_id, occurred_month, state, metric, quantity, idempotency_key, next_attempt_at)
       select occurred_at, id, customer_id, occurred_month, 'pending', metric, quantity, idempotency_key, now() from ?? where idempotency_key = 'seed-2024-06-3'`,
      [table(month)],
    );
    // The app's hourly job: the waiting month in its result and in usage_months_pack_waiting.
    const job = createUsagePartitionsJob({
      db: iso.t.db,
      logger: pino({ level: 'silent' }),
      metrics: iso.t.c.metrics,
      audit: iso.t.c.audit,
      ahead: 1,
      pack: true,
    });
    const first = (await job.run())!;
    expect(first.packed).toEqual([]);
    expect(first.packWaiting).toEqual([`${month}-01`]);
    expect(await gauge('usage_months_pack_waiting')).toBe(1);
    expect(await placeOf(month)).toEqual({ rows: 10, packed: 0 });
    await iso.t.db.raw(`update usage_outbox set state = 'sent', sent_at = now(), next_attempt_at = null where idempotency_key = 'seed-2024-06-3'`);
    const packedBefore = await gauge('usage_months_packed_total');
    const second = (await job.run())!;
    expect(second.packed.map((p) => [p.month, p.events])).toEqual([[`${month}-01`, 10]]);
    expect(await gauge('usage_months_pack_waiting')).toBe(0);
    expect(await gauge('usage_months_packed_total')).toBe(packedBefore + 1);
    expect(await placeOf(month)).toEqual({ rows: 0, packed: 10 });
  });
});

describe('retention of a packed month', () => {
  const month = '2024-03';
  test('when it is archived and dropped, then the archive holds every event once, the packs go with it, and a restore brings each back once; a restore into a packed month adds nothing', async () => {
    const events = await eventsOf(month);
    const whole = await request(iso.t.app)
      .get('/api/reports/usage')
      .query({ from: `${month}-01`, to: `${month}-28`, group_by: 'customer' })
      .set(admin());
    const run = await runUsageRetention(retentionDeps(iso.t, dir));
    expect(run!.dropped).toEqual(expect.arrayContaining([month]));
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, `${table(month)}.manifest.json`), 'utf8'));
    expect(manifest.rows).toBe(300);
    const archived = gunzipSync(fs.readFileSync(path.join(dir, `${table(month)}.ndjson.gz`)))
      .toString()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: string });
    expect(archived.map((e) => e.id).sort()).toEqual(events.map((e) => e.id).sort());
    expect(await iso.t.db('usage_event_packs').where('day', '>=', `${month}-01`).andWhere('day', '<', '2024-04-01').count({ n: '*' })).toEqual([{ n: '0' }]);
    // Reports from the daily totals alone read the same.
    const after = await request(iso.t.app)
      .get('/api/reports/usage')
      .query({ from: `${month}-01`, to: `${month}-28`, group_by: 'customer' })
      .set(admin());
    expect(after.body).toEqual(whole.body);

    const restored = await request(iso.t.app).post(`/api/usage/archives/${month}/restore`).set(admin()).send({});
    expect(restored.body).toMatchObject({ rows: 300, inserted: 300 });
    expect(await eventsOf(month)).toEqual(events);
    // Packed again (it is settled), then restored once more: every key is in the packs, nothing is added.
    const runs = [await pack(), await pack()];
    expect(runs.flatMap((r) => r.packed.map((p) => [p.month, p.events]))).toContainEqual([`${month}-01`, 300]);
    expect(await placeOf(month)).toEqual({ rows: 0, packed: 300 });
    const again = await request(iso.t.app).post(`/api/usage/archives/${month}/restore`).set(admin()).send({});
    expect(again.body).toMatchObject({ rows: 300, inserted: 0 });
    expect(await placeOf(month)).toEqual({ rows: 0, packed: 300 });
    expect(await eventsOf(month)).toEqual(events);
  });
});

describe('the migration', () => {
  test('when it is undone, then every packed event is a row again, as it was; done again, the table is back', async () => {
    const month = '2024-03';
    const events = await eventsOf(month);
    expect(await placeOf(month)).toEqual({ rows: 0, packed: 300 });
    await iso.t.db.migrate.down({ ...migrationConfig(), name: '20261210000000_create_usage_event_packs' });
    const { rows } = await iso.t.db.raw<{ rows: Record<string, string>[] }>(
      `select id::text, customer_id::text, metric, quantity::text, to_char(occurred_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') as occurred_at,
              idempotency_key, encode(request_hash, 'hex') as request_hash, state from ?? order by id`,
      [table(month)],
    );
    expect(rows).toEqual(events);
    await iso.t.db.migrate.latest(migrationConfig());
    expect(await placeOf(month)).toEqual({ rows: 300, packed: 0 });
  });
});
