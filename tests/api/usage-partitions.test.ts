import { randomBytes } from 'node:crypto';
import knexFactory from 'knex';
import request from 'supertest';
import { createCustomer, type CreatedCustomer } from '../helpers/factories';
import { createIsolatedTestApp } from '../helpers/fresh-database';
import { createTestApp, type TestApp } from '../helpers/test-app';
import { maintainUsagePartitions } from '../../src/modules/usage-partitions/maintenance';

// A database of its own (the maintenance acts on every month of usage_events), and months far from
// the real clock (2090+, 2001).
let iso: Awaited<ReturnType<typeof createIsolatedTestApp>>;
let t: TestApp;
let c: CreatedCustomer;
beforeAll(async () => {
  iso = await createIsolatedTestApp('usage_partitions');
  t = iso.t;
  c = await createCustomer(t);
});
afterAll(async () => {
  await iso.close();
});

const partitionsOf = async () =>
  (
    await t.db.raw<{ rows: { name: string; bound: string }[] }>(
      `select c.relname as name, pg_get_expr(c.relpartbound, c.oid) as bound
         from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = 'usage_events'::regclass order by 1`,
    )
  ).rows;
const defaultRows = async () => Number((await t.db.raw<{ rows: { n: string }[] }>('select count(*) as n from usage_events_default')).rows[0]!.n);
const insertRaw = (occurredAt: string, key: string) =>
  t.db.raw(
    `insert into usage_events (occurred_at, id, customer_id, occurred_month, state, metric, quantity, idempotency_key, request_hash)
     values (?::timestamptz, gen_random_uuid(), ?, usage_month(?::timestamptz), 'l', 'api_calls', 1, ?, decode(repeat('ab', 16), 'hex'))`,
    [occurredAt, c.id, occurredAt, key],
  );
/** A second connection of its own, outside the app's pool. */
const otherConnection = () => knexFactory({ client: 'pg', connection: iso.url, pool: { min: 0, max: 2 } });

describe('maintainUsagePartitions: months ahead', () => {
  test('when run at 2090-06-15 with 3 ahead, then 2090-05 (35 days back: POST /api/usage still takes it) to 2090-09 are made, each with every index and the foreign key', async () => {
    const r = await maintainUsagePartitions(t.db, { audit: t.c.audit, now: new Date('2090-06-15T10:00:00Z'), ahead: 3 });
    expect(r).toMatchObject({
      created: ['2090-05-01', '2090-06-01', '2090-07-01', '2090-08-01', '2090-09-01'],
      movedFromDefault: 0,
      defaultRows: 0,
      skipped: false,
    });
    const parts = await partitionsOf();
    expect(parts).toEqual(
      expect.arrayContaining([
        { name: 'usage_events_2090_06', bound: "FOR VALUES FROM ('2090-06-01') TO ('2090-07-01')" },
        { name: 'usage_events_2090_09', bound: "FOR VALUES FROM ('2090-09-01') TO ('2090-10-01')" },
      ]),
    );
    expect(parts.map((p) => p.name)).not.toContain('usage_events_2090_10');
    expect(r.partitions).toBe(parts.filter((p) => p.bound !== 'DEFAULT').length);

    // Every partitioned index has its partition (adopted, not built twice), the FK is there, the bounds CHECK is gone.
    const { rows: idx } = await t.db.raw<{ rows: { parent: string; child: string }[] }>(
      `select pi.relname as parent, ci.relname as child
         from pg_index x join pg_class pi on pi.oid = x.indexrelid and x.indrelid = 'usage_events'::regclass
         left join pg_inherits h on h.inhparent = x.indexrelid
         left join pg_class ci on ci.oid = h.inhrelid and ci.relname like 'usage_events_2090_06_%'
        where ci.relname is not null order by 1`,
    );
    const { rows: parentIdx } = await t.db.raw<{ rows: unknown[] }>(`select 1 from pg_index where indrelid = 'usage_events'::regclass`);
    expect(idx).toHaveLength(parentIdx.length);
    const { rows: all } = await t.db.raw<{ rows: unknown[] }>(`select 1 from pg_index where indrelid = 'usage_events_2090_06'::regclass`);
    expect(all).toHaveLength(parentIdx.length);
    const { rows: cons } = await t.db.raw<{ rows: { conname: string; contype: string; parent: boolean }[] }>(
      `select conname, contype, conparentid <> 0 as parent from pg_constraint where conrelid = 'usage_events_2090_06'::regclass order by 1`,
    );
    expect(cons).toEqual(expect.arrayContaining([{ conname: 'usage_events_customer_id_foreign', contype: 'f', parent: true }]));
    expect(cons.map((x) => x.conname)).not.toContain('usage_events_2090_06_bounds');

    const audit = await t.db('audit_log').where({ action: 'usage.partition_create', target_id: 'usage_events_2090_06' });
    expect(audit).toEqual([expect.objectContaining({ actor: 'system', outcome: 'success', details: { month: '2090-06', moved: 0 } })]);
  });

  test('when run again, then nothing is made (idempotent), and an event of 2090-07 lands in its partition', async () => {
    const r = await maintainUsagePartitions(t.db, { audit: t.c.audit, now: new Date('2090-06-20T00:00:00Z'), ahead: 3 });
    expect(r).toMatchObject({ created: [], movedFromDefault: 0, skipped: false });
    await insertRaw('2090-07-04T00:00:00Z', `k-${randomBytes(4).toString('hex')}`);
    const { rows } = await t.db.raw<{ rows: { part: string }[] }>(
      `select tableoid::regclass::text as part from usage_events where customer_id = ? and occurred_month = '2090-07-01'`,
      [c.id],
    );
    expect(rows).toEqual([{ part: 'usage_events_2090_07' }]);
  });
});

describe('maintainUsagePartitions: strays in the default partition', () => {
  test('when an event of a month without a partition is stored, then it lands in the default, and maintenance moves it into a new partition', async () => {
    const key = `stray-${randomBytes(4).toString('hex')}`;
    await insertRaw('2001-05-09T08:00:00Z', key);
    const where = { customer_id: c.id, idempotency_key: key };
    const before = await t.db('usage_events').where(where);
    expect(before).toHaveLength(1);
    expect(await defaultRows()).toBe(1);

    const r = await maintainUsagePartitions(t.db, { audit: t.c.audit, now: new Date('2090-06-15T00:00:00Z'), ahead: 3 });
    expect(r).toMatchObject({ created: ['2001-05-01'], movedFromDefault: 1, defaultRows: 0 });
    expect(await defaultRows()).toBe(0);
    const after = await t.db('usage_events').where(where).select(t.db.raw('usage_events.*, tableoid::regclass::text as part'));
    expect(after).toHaveLength(1);
    expect(after[0]).toMatchObject({ id: before[0]!.id, quantity: before[0]!.quantity, part: 'usage_events_2001_05' });
    const audit = await t.db('audit_log').where({ action: 'usage.partition_create', target_id: 'usage_events_2001_05' });
    expect(audit).toEqual([expect.objectContaining({ actor: 'system', details: { month: '2001-05', moved: 1 } })]);
  });

  test('when a table of a wanted name exists and is not a partition, then the run fails naming it, and the control month is made', async () => {
    await t.db.raw('create table usage_events_2094_01 (x int)');
    await expect(maintainUsagePartitions(t.db, { audit: t.c.audit, now: new Date('2094-01-10T00:00:00Z'), ahead: 1 })).rejects.toThrow(
      /usage_events_2094_01 already exists/,
    );
    await t.db.raw('drop table usage_events_2094_01');
    const r = await maintainUsagePartitions(t.db, { audit: t.c.audit, now: new Date('2094-01-10T00:00:00Z'), ahead: 1 });
    expect(r.created).toEqual(['2094-01-01', '2094-02-01']); // 2093-12 (35 days back) was made by the failed run, before the month in the way
  });
});

describe('maintainUsagePartitions: concurrency and locks', () => {
  test('when two instances run at once, then neither fails and each month is made once', async () => {
    const other = otherConnection();
    try {
      const now = new Date('2091-01-15T00:00:00Z');
      const [a, b] = await Promise.all([
        maintainUsagePartitions(t.db, { audit: t.c.audit, now, ahead: 3 }),
        maintainUsagePartitions(other, { audit: t.c.audit, now, ahead: 3 }),
      ]);
      expect([...a.created, ...b.created].sort()).toEqual(['2090-12-01', '2091-01-01', '2091-02-01', '2091-03-01', '2091-04-01']);
      const audit = await t.db('audit_log').where({ action: 'usage.partition_create' }).whereIn('target_id', ['usage_events_2091_01', 'usage_events_2091_04']);
      expect(audit).toHaveLength(2);
      // The advisory lock is released: a later run works (and finds nothing to do).
      expect(await maintainUsagePartitions(other, { audit: t.c.audit, now, ahead: 3 })).toMatchObject({ created: [], skipped: false });
    } finally {
      await other.destroy();
    }
  });

  test('when another session holds the advisory lock, then a run returns at once, skipped; released, the run works', async () => {
    const other = otherConnection();
    const conn: unknown = await (other.client as { acquireConnection(): Promise<unknown> }).acquireConnection();
    try {
      await other.raw(`select pg_advisory_lock(hashtext('usage-partitions'), 0)`).connection(conn);
      const r = await maintainUsagePartitions(t.db, { audit: t.c.audit, now: new Date('2092-01-15T00:00:00Z'), ahead: 1 });
      expect(r).toMatchObject({ created: [], skipped: true });
      expect(r.ms).toBeLessThan(1000);
      await other.raw(`select pg_advisory_unlock(hashtext('usage-partitions'), 0)`).connection(conn);
      expect((await maintainUsagePartitions(t.db, { audit: t.c.audit, now: new Date('2092-01-15T00:00:00Z'), ahead: 1 })).created).toEqual([
        '2091-12-01',
        '2092-01-01',
        '2092-02-01',
      ]);
    } finally {
      await (other.client as { releaseConnection(c: unknown): Promise<void> }).releaseConnection(conn);
      await other.destroy();
    }
  });

  test('when the attach transaction is open, then inserts into other months and reads of customers go on (no lock on usage_events blocks them)', async () => {
    const other = otherConnection();
    try {
      const seen: { insertMs: number; customerMs: number; locks: { rel: string; mode: string }[] }[] = [];
      await maintainUsagePartitions(t.db, {
        audit: t.c.audit,
        now: new Date('2095-03-01T00:00:00Z'),
        ahead: 0,
        beforeCommit: async (month) => {
          if (month !== '2095-03-01') return; // the months before it (35 days back) are made first
          const locks = (
            await t.db.raw<{ rows: { rel: string; mode: string }[] }>(
              `select c.relname as rel, l.mode from pg_locks l join pg_class c on c.oid = l.relation
                where l.pid <> pg_backend_pid() and l.granted and c.relname in ('usage_events', 'usage_events_default', 'customers') order by 1, 2`,
            )
          ).rows;
          const at = Date.now();
          await other.transaction(async (trx) => {
            await trx.raw(`set local lock_timeout = '2s'`);
            await trx.raw(
              `insert into usage_events (occurred_at, id, customer_id, occurred_month, state, metric, quantity, idempotency_key, request_hash)
               values ('2090-08-02', gen_random_uuid(), ?, '2090-08-01', 'l', 'api_calls', 1, ?, decode(repeat('cd', 16), 'hex'))`,
              [c.id, `during-${randomBytes(4).toString('hex')}`],
            );
          });
          const insertMs = Date.now() - at;
          const at2 = Date.now();
          await other.transaction(async (trx) => {
            await trx.raw(`set local lock_timeout = '2s'`);
            await trx('customers').where({ id: c.id }).first();
          });
          seen.push({ insertMs, customerMs: Date.now() - at2, locks });
        },
      });
      expect(seen).toHaveLength(1);
      // What the maintenance holds: never ACCESS EXCLUSIVE on usage_events or customers.
      expect(seen[0]!.locks).toEqual(
        expect.arrayContaining([
          { rel: 'usage_events', mode: 'ShareUpdateExclusiveLock' },
          { rel: 'usage_events_default', mode: 'AccessExclusiveLock' },
        ]),
      );
      expect(seen[0]!.locks.filter((l) => l.mode === 'AccessExclusiveLock').map((l) => l.rel)).toEqual(['usage_events_default']);
      expect(seen[0]!.insertMs).toBeLessThan(1000);
      expect(seen[0]!.customerMs).toBeLessThan(1000);
    } finally {
      await other.destroy();
    }
  });

  test('when usage is posted while a partition is attached, then every event is answered 201 and stored once', async () => {
    const customers = await Promise.all([createCustomer(t), createCustomer(t)]);
    const posted: Promise<request.Response>[] = [];
    const keys: string[] = [];
    const waited: number[] = [];
    const send = (i: number) => {
      const k = `during-${i}-${randomBytes(4).toString('hex')}`;
      keys.push(k);
      return request(t.app)
        .post('/api/usage')
        .set('X-API-Key', customers[i % 2]!.apiKey)
        .send({ metric: 'api_calls', quantity: 1, idempotency_key: k });
    };
    for (let i = 0; i < 10; i++) posted.push(send(i)); // already in flight when the attach begins
    const run = maintainUsagePartitions(t.db, {
      audit: t.c.audit,
      now: new Date('2096-05-01T00:00:00Z'),
      ahead: 1,
      beforeCommit: async (month) => {
        if (month !== '2096-05-01') return;
        const at = Date.now();
        for (let i = 10; i < 30; i++) posted.push(send(i).then((res) => ((waited[i] = Date.now() - at), res)));
        await new Promise((r) => setTimeout(r, 200));
      },
    });
    const r = await run;
    const answers = await Promise.all(posted);
    expect(r.created).toEqual(['2096-03-01', '2096-04-01', '2096-05-01', '2096-06-01']);
    expect(answers.map((a) => a.status)).toEqual(Array(30).fill(201));
    const stored = await t.db('usage_events').whereIn('idempotency_key', keys).select('idempotency_key');
    expect(stored.map((s) => s.idempotency_key).sort()).toEqual([...keys].sort());
    // The usage write's plan reads every partition, the default among them: a POST made while the attach
    // transaction is open waits for its commit (here the 200 ms the test holds it), then succeeds.
    if (process.env.SHOW_PARTITION_WAITS) process.stdout.write(`POSTs during the attach waited up to ${Math.max(...waited.filter(Number.isFinite))} ms\n`);
  });

  test('when a long query holds the default partition, then the run gives up after lock_timeout, leaves no table behind, and the next round works', async () => {
    const other = otherConnection();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let holding!: () => void;
    const ready = new Promise<void>((r) => (holding = r));
    const blocker = other.transaction(async (trx) => {
      await trx.raw('select count(*) from usage_events_default');
      holding();
      await held;
    });
    try {
      await ready;
      const at = Date.now();
      await expect(
        maintainUsagePartitions(t.db, { audit: t.c.audit, now: new Date('2097-07-01T00:00:00Z'), ahead: 0, lockTimeoutMs: 300 }),
      ).rejects.toMatchObject({
        code: '55P03',
      });
      expect(Date.now() - at).toBeLessThan(3000);
      expect((await t.db.raw<{ rows: { r: string | null }[] }>(`select to_regclass('usage_events_2097_07')::text as r`)).rows[0]!.r).toBeNull();
    } finally {
      release();
      await blocker;
      await other.destroy();
    }
    expect((await maintainUsagePartitions(t.db, { audit: t.c.audit, now: new Date('2097-07-01T00:00:00Z'), ahead: 0, lockTimeoutMs: 300 })).created).toEqual([
      '2097-05-01',
      '2097-06-01',
      '2097-07-01',
    ]);
  });
});

describe('the background job and its metrics', () => {
  test("when the container's job runs (the app's clock at 2093-02-15), then it makes 2093-01..2093-05, logs it at info, and the gauges read 3 ahead and 0 strays", async () => {
    const job = await createTestApp({ USAGE_PARTITIONS_AHEAD: '3' }, { databaseUrl: iso.url, now: () => Date.parse('2093-02-15T12:00:00Z') });
    try {
      const r = await job.c.usagePartitions.run();
      expect(r?.created).toEqual(['2093-01-01', '2093-02-01', '2093-03-01', '2093-04-01', '2093-05-01']);
      const line = job.logs.map((l) => JSON.parse(l) as { level: number; msg: string; component?: string }).find((l) => l.msg === 'usage partitions created');
      expect(line).toMatchObject({ level: 30, component: 'usage-partitions' });
      const metrics = await job.c.metrics.registry.metrics();
      expect(metrics).toMatch(/^usage_partitions_months_ahead 3$/m);
      expect(metrics).toMatch(/^usage_default_partition_rows 0$/m);
      expect(metrics).toMatch(/^usage_partition_maintenance_runs_total\{outcome="done"\} 1$/m);
    } finally {
      await job.close();
    }
  });

  test('when a run fails, then it is logged at error and counted, and the job does not throw', async () => {
    await t.db.raw('create table usage_events_2093_06 (x int)');
    const failing = await createTestApp({ USAGE_PARTITIONS_AHEAD: '4' }, { databaseUrl: iso.url, now: () => Date.parse('2093-02-15T12:00:00Z') });
    try {
      await expect(failing.c.usagePartitions.run()).resolves.toBeUndefined();
      const line = failing.logs.map((l) => JSON.parse(l) as { level: number; msg: string }).find((l) => l.msg === 'usage partition maintenance failed');
      expect(line?.level).toBe(50);
      expect(await failing.c.metrics.registry.metrics()).toMatch(/^usage_partition_maintenance_runs_total\{outcome="failed"\} 1$/m);
    } finally {
      await failing.close();
      await t.db.raw('drop table usage_events_2093_06');
    }
  });
});
