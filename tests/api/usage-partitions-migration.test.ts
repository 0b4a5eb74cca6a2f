/**
 * The migration that partitions usage_events by month (20261208000000), on a populated table while
 * the previous release keeps writing to it: every row kept once with its values, idempotency intact
 * across the month boundary, and the way back.
 */
import type { Knex } from 'knex';
import { createKnex } from '../../src/db/knex';
import { migrateLatest, migrationConfig } from '../../src/db/migration-source';
import { createUsageRepository } from '../../src/modules/usage/usage-repository';
import { testDatabaseUrl } from '../helpers/test-app';

const MIGRATION = '20261208000000_partition_usage_events';
let admin: Knex;
let db: Knex;
let writer: Knex;
const name = `usage_partitions_${Date.now()}_${process.pid}`;

beforeAll(async () => {
  admin = createKnex({ url: testDatabaseUrl(), poolMax: 1 });
  await admin.raw('create database ??', [name]);
  const url = new URL(testDatabaseUrl());
  url.pathname = `/${name}`;
  db = createKnex({ url: url.toString(), poolMax: 4 });
  writer = createKnex({ url: url.toString(), poolMax: 2 });
  await migrateLatest(db);
  await db.migrate.down({ ...migrationConfig(), name: MIGRATION });
});
afterAll(async () => {
  await writer.destroy();
  await db.destroy();
  await admin.raw('drop database ?? with (force)', [name]);
  await admin.destroy();
});

interface Row {
  id: string;
  customer_id: string;
  metric: string;
  quantity: string;
  occurred_at: string;
  idempotency_key: string;
  request_hash: string;
  state: string;
  attempts: number;
  last_error: string | null;
  stripe_submission_id: string | null;
}
/**
 * Every event, the same whichever layout holds it: the fingerprint as hex, the state as a word, and
 * the forwarding details (attempts, error, submission) of the events still to forward (pending,
 * failed); of the others the partitioned layout keeps none.
 */
async function allRows(): Promise<Row[]> {
  const partitioned = (await db.raw<{ rows: unknown[] }>(`select 1 from pg_class where relname = 'usage_events' and relkind = 'p'`)).rows.length > 0;
  const common = `e.id, e.customer_id, e.metric, e.quantity::text as quantity,
    to_char(e.occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS') as occurred_at, e.idempotency_key`;
  const sql = partitioned
    ? `select ${common}, encode(e.request_hash, 'hex') as request_hash,
              coalesce(o.state, case e.state when 'l' then 'local' when 't' then 'late' else 'sent' end) as state,
              coalesce(o.attempts, 0)::int as attempts, o.last_error, o.stripe_submission_id
         from usage_events e left join usage_outbox o on o.customer_id = e.customer_id and o.id = e.id and o.state in ('pending', 'failed')
        order by e.id`
    : `select ${common}, e.request_hash, e.state,
              case when e.state in ('pending', 'failed') then e.attempts else 0 end as attempts,
              case when e.state in ('pending', 'failed') then e.last_error end as last_error,
              case when e.state in ('pending', 'failed') then e.stripe_submission_id end as stripe_submission_id
         from usage_events e order by e.id`;
  return (await db.raw<{ rows: Row[] }>(sql)).rows;
}
/** The old write's fingerprint (hex of the first 16 bytes of SHA-256), as the plain table held it; every 7th event sent without occurred_at. */
const FINGERPRINT = `encode(substring(sha256(convert_to(m || E'\\n' || q || E'\\n'
  || case when i % 7 = 0 then '' else floor(extract(epoch from t) * 1000)::bigint::text end, 'UTF8')) from 1 for 16), 'hex')`;

test('when usage_events is partitioned while the old release writes and forwards, then every row is kept once with its values, and back again', async () => {
  const customers = (
    await db('customers')
      .insert([0, 1, 2].map((i) => ({ email: `partition-${i}-${Date.now()}@example.com`, company_name: `P${i}` })))
      .returning('id')
  ).map((r: { id: string }) => r.id);
  // 30,000 events over three months (Nov 2026 to Jan 2027), every state, some keys given no occurred_at.
  await db.raw(
    `insert into usage_events (id, customer_id, metric, quantity, occurred_at, idempotency_key, request_hash, state, attempts, next_attempt_at, last_error, stripe_submission_id)
     select usage_uuidv7(), (?::uuid[])[1 + i % 3], m, q::numeric, t, 'k-' || i, ${FINGERPRINT},
            (array['sent','pending','failed','local','late'])[1 + i % 5], i % 4,
            case when i % 5 = 1 then t end, case when i % 5 = 2 then 'refused' end, case when i % 5 = 2 then gen_random_uuid() end
       from generate_series(1, 30000) i,
            lateral (select timestamptz '2026-11-01' + (i::float8 / 30000) * interval '92 days' as t,
                            (array['api_calls','storage_gb'])[1 + i % 2] as m, (1 + i % 9)::text as q) x`,
    [`{${customers.join(',')}}`],
  );
  const before = await allRows();
  expect(before).toHaveLength(30000);

  // The old release at work during the copy: new events, and the forwarder marking events sent.
  let running = true;
  const written: string[] = [];
  const load = (async () => {
    for (let n = 0; running; n++) {
      try {
        await writer.raw(
          `insert into usage_events (id, customer_id, metric, quantity, occurred_at, idempotency_key, request_hash, state, next_attempt_at)
           values (usage_uuidv7(), ?, 'api_calls', 1, now(), ?, md5(?), 'pending', now())`,
          [customers[n % 3]!, `live-${n}`, `live-${n}`],
        );
        written.push(`live-${n}`);
        await writer.raw(`update usage_events set state = 'sent', sent_at = now(), next_attempt_at = null where idempotency_key = ? and state = 'pending'`, [
          `k-${(n * 5 + 1) % 30000}`,
        ]);
      } catch {
        // after the swap the old release's writes fail (it writes no occurred_month), as the migration says
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  })();
  await new Promise((r) => setTimeout(r, 50));
  await db.migrate.up({ ...migrationConfig(), name: MIGRATION });
  running = false;
  await load;
  expect(written.length).toBeGreaterThan(0);

  const after = await allRows();
  // Every row before, once; the live writes, once each.
  const byKey = new Map<string, Row[]>();
  for (const r of after) byKey.set(`${r.customer_id}/${r.idempotency_key}`, [...(byKey.get(`${r.customer_id}/${r.idempotency_key}`) ?? []), r]);
  for (const list of byKey.values()) expect(list).toHaveLength(1);
  expect(after).toHaveLength(30000 + written.length);
  const afterById = new Map(after.map((r) => [r.id, r]));
  for (const r of before) {
    const now = afterById.get(r.id)!;
    // The forwarder's updates during the copy are kept: the state may have moved from pending to sent.
    expect({ ...now, state: r.state, attempts: r.attempts }).toEqual(r);
    if (now.state !== r.state) expect([r.state, now.state]).toEqual(['pending', 'sent']);
  }
  const live = await db('usage_events').whereIn('idempotency_key', written).count<{ n: string }[]>('* as n');
  expect(Number(live[0]!.n)).toBe(written.length);

  // The table is partitioned by month, the rows in their months' partitions, the default empty.
  const parts = (
    await db.raw<{ rows: { p: string; n: string }[] }>(`select tableoid::regclass::text as p, count(*)::text as n from usage_events group by 1 order by 1`)
  ).rows.map((r) => r.p);
  expect(parts).toEqual(expect.arrayContaining(['usage_events_2026_11', 'usage_events_2026_12', 'usage_events_2027_01']));
  expect(parts).not.toContain('usage_events_default');

  // Idempotency holds across the boundary: a converted event sent again is a replay, in its own month.
  const repo = createUsageRepository();
  const sample = before.find((r) => r.idempotency_key === 'k-29999')!;
  const replay = await repo.write(
    db,
    [
      {
        customerId: sample.customer_id,
        metric: sample.metric,
        quantity: sample.quantity.replace(/\.0+$/, ''),
        occurredAt: new Date(`${sample.occurred_at}Z`),
        idempotencyKey: 'k-29999',
      },
    ],
    'local',
    Date.UTC(2027, 1, 3),
  );
  expect(replay[0]).toMatchObject({ id: sample.id, created: false, conflict: false });
  // One sent without occurred_at (every 7th), retried in the next month: found in its month, not stored again.
  const absent = before.find((r) => r.idempotency_key === 'k-2996')!; // 2996 = 7 * 428, 2026-11-10
  const retry = await repo.write(
    db,
    [{ customerId: absent.customer_id, metric: absent.metric, quantity: absent.quantity.replace(/\.0+$/, ''), idempotencyKey: 'k-2996' }],
    'local',
    Date.UTC(2026, 11, 2),
  );
  expect(retry[0]).toMatchObject({ id: absent.id, created: false, conflict: false });
  // Control: a new key is stored.
  const fresh = await repo.write(
    db,
    [{ customerId: absent.customer_id, metric: 'api_calls', quantity: '1', idempotencyKey: 'k-new' }],
    'local',
    Date.UTC(2026, 11, 2),
  );
  expect(fresh[0]!.created).toBe(true);
  await db('usage_events').where({ idempotency_key: 'k-new' }).delete();

  // The way back: one plain table with every row and its values.
  await db.migrate.down({ ...migrationConfig(), name: MIGRATION });
  const relkind = (await db.raw<{ rows: { k: string }[] }>(`select relkind::text as k from pg_class where relname = 'usage_events'`)).rows[0]!.k;
  expect(relkind).toBe('r');
  const back = await allRows();
  expect(back).toEqual(after);
  await migrateLatest(db);
  expect(await allRows()).toEqual(after);
}, 120_000);

/** Tables of one row per month, not per customer: reference data on a distributed database (docs/SCALING.md). */
const PER_MONTH = ['usage_partition_compactions', 'usage_archives', 'usage_packed_months'];

test('when the schema is migrated, then every unique constraint and foreign key on the usage tables holds customer_id (so it can be distributed by customer)', async () => {
  await migrateLatest(db);
  const { rows } = await db.raw<{ rows: { table: string; name: string; def: string; columns: string[] }[] }>(
    `select c.conrelid::regclass::text as table, c.conname as name, pg_get_constraintdef(c.oid) as def,
            array(select a.attname::text from unnest(c.conkey) k join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k) as columns
       from pg_constraint c join pg_class t on t.oid = c.conrelid
      where t.relname like 'usage\\_%' and not t.relispartition and c.contype in ('p', 'u', 'f')
        and t.relname not in (${PER_MONTH.map((n) => `'${n}'`).join(', ')})`,
  );
  const tables = new Set(rows.map((r) => r.table));
  expect([...tables].sort()).toEqual([
    'usage_bundles',
    'usage_daily',
    'usage_event_packs',
    'usage_events',
    'usage_outbox',
    'usage_threshold_crossings',
    'usage_true_ups',
  ]);
  expect(rows.filter((r) => !r.columns.includes('customer_id'))).toEqual([]);
  // Control: the check reads real columns (usage_events' idempotency key names all three).
  expect(rows.find((r) => r.name === 'usage_events_customer_idempotency_unique')!.columns.sort()).toEqual(['customer_id', 'idempotency_key', 'occurred_month']);
});
