/**
 * Settled months: once no event can arrive online for a month (35 days after its end), the partition
 * maintenance rebuilds that partition's indexes once, packing the B-tree pages that per-customer key
 * order left half full.
 */
import { createIsolatedTestApp } from '../helpers/fresh-database';
import { createCustomer } from '../helpers/factories';
import { maintainUsagePartitions } from '../../src/modules/usage-partitions/maintenance';

let iso: Awaited<ReturnType<typeof createIsolatedTestApp>>;
beforeAll(async () => {
  iso = await createIsolatedTestApp('compaction');
});
afterAll(async () => {
  await iso.close();
});

const indexesOf = async (table: string) =>
  (
    await iso.t.db.raw<{ rows: { name: string; valid: boolean }[] }>(
      `select ic.relname as name, x.indisvalid as valid from pg_index x join pg_class ic on ic.oid = x.indexrelid where x.indrelid = ?::regclass order by 1`,
      [table],
    )
  ).rows;

test('when a month has settled, then its indexes are rebuilt once (smaller, every row still found), the months after it in later runs, never an unsettled one', async () => {
  const { db } = iso.t;
  // The months the migration made (around today, empty here) would settle first: this database starts without them.
  const made = await db.raw<{ rows: { name: string }[] }>(
    `select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = 'usage_events'::regclass and c.relname <> 'usage_events_default'`,
  );
  for (const r of made.rows) await db.raw('drop table ??', [r.name]);
  for (const [name, from, to] of [
    ['usage_events_2040_01', '2040-01-01', '2040-02-01'],
    ['usage_events_2040_02', '2040-02-01', '2040-03-01'],
    ['usage_events_2040_04', '2040-04-01', '2040-05-01'],
  ] as const)
    await db.raw(`create table ?? partition of usage_events for values from ('${from}') to ('${to}')`, [name]);
  const customers = await Promise.all(Array.from({ length: 20 }, () => createCustomer(iso.t)));
  // 40,000 events into January, each customer's keys in order, the customers interleaved (as live traffic comes).
  await db.raw(
    `insert into usage_events (occurred_at, id, customer_id, occurred_month, state, request_hash, metric, quantity, idempotency_key)
     select t, usage_uuidv7(), (?::uuid[])[1 + i % 20], '2040-01-01', 'l', substring(sha256(i::text::bytea) from 1 for 16), 'api_calls', 1,
            'k-' || lpad((i / 20)::text, 11, '0')
       from generate_series(0, 39999) i, lateral (select timestamptz '2040-01-01' + i * interval '1 minute' as t) x`,
    [`{${customers.map((c) => c.id).join(',')}}`],
  );
  // A rebuild cut short before left an invalid index behind (a unique index that could not be built).
  await db.raw('create unique index concurrently usage_events_2040_01_metric_ccnew on usage_events_2040_01 (metric)').catch(() => undefined);
  expect((await indexesOf('usage_events_2040_01')).find((i) => i.name === 'usage_events_2040_01_metric_ccnew')).toEqual({
    name: 'usage_events_2040_01_metric_ccnew',
    valid: false,
  });

  // 2040-03-10: January settled (its end + 35 days + a day is 2040-03-08); February not yet.
  const first = await maintainUsagePartitions(db, { audit: iso.t.c.audit, now: new Date('2040-03-10T00:00:00Z'), ahead: 1 });
  expect(first.compacted).toEqual(['2040-01-01']);
  const [row] = await db('usage_partition_compactions').where({ month: '2040-01-01' });
  expect(row).toMatchObject({ partition: 'usage_events_2040_01' });
  expect(Number(row.bytes_after)).toBeLessThan(Number(row.bytes_before) * 0.8);
  // The leftover is gone; every index valid.
  const after = await indexesOf('usage_events_2040_01');
  expect(after.map((i) => i.name)).not.toContain('usage_events_2040_01_metric_ccnew');
  expect(after.every((i) => i.valid)).toBe(true);
  expect(after).toHaveLength(3);
  // Every row is still found through the rebuilt idempotency index.
  const probe = await db.raw<{ rows: { n: number }[] }>(
    `select count(*)::int as n from usage_events where customer_id = ? and idempotency_key = 'k-00000000007' and occurred_month = '2040-01-01'`,
    [customers[0]!.id],
  );
  expect(probe.rows[0]!.n).toBe(1);
  expect((await db.raw<{ rows: { n: number }[] }>(`select count(*)::int as n from usage_events where occurred_month = '2040-01-01'`)).rows[0]!.n).toBe(40000);

  // Again at once: February has not settled, January is done: nothing.
  expect((await maintainUsagePartitions(db, { audit: iso.t.c.audit, now: new Date('2040-03-10T00:00:00Z'), ahead: 1 })).compacted).toEqual([]);
  // Later: February, then March (made by the first run), then April; one a run.
  const later = new Date('2040-06-20T00:00:00Z');
  expect((await maintainUsagePartitions(db, { audit: iso.t.c.audit, now: later, ahead: 0 })).compacted).toEqual(['2040-02-01']);
  expect((await maintainUsagePartitions(db, { audit: iso.t.c.audit, now: later, ahead: 0 })).compacted).toEqual(['2040-03-01']);
  expect((await maintainUsagePartitions(db, { audit: iso.t.c.audit, now: later, ahead: 0 })).compacted).toEqual(['2040-04-01']);
  expect((await maintainUsagePartitions(db, { audit: iso.t.c.audit, now: later, ahead: 0 })).compacted).toEqual([]);
}, 120_000);
