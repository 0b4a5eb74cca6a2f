/**
 * The usage write into the current month's partition directly (usage-repository.ts, directMonth):
 * used when every event falls in the month and its partition is attached; never into a table that
 * is not (yet, or any more) one of usage_events, and a partition gone sends the write through
 * usage_events, whatever the process remembered.
 */
import knexFactory, { type Knex } from 'knex';
import { createCustomer, type CreatedCustomer } from '../helpers/factories';
import { createIsolatedTestApp } from '../helpers/fresh-database';
import type { TestApp } from '../helpers/test-app';
import { maintainUsagePartitions } from '../../src/modules/usage-partitions/maintenance';
import { createUsageRepository, type EventToWrite } from '../../src/modules/usage/usage-repository';

// A database of its own (partitions are detached and dropped here), months far from the real clock.
let iso: Awaited<ReturnType<typeof createIsolatedTestApp>>;
let t: TestApp;
let c: CreatedCustomer;
/** One connection, so its prepared statements say which text the write ran. */
let db: Knex;
const repo = createUsageRepository();
beforeAll(async () => {
  iso = await createIsolatedTestApp('usage_direct');
  t = iso.t;
  c = await createCustomer(t);
  db = knexFactory({ client: 'pg', connection: iso.url, pool: { min: 1, max: 1 } });
});
afterAll(async () => {
  await db.destroy();
  await iso.close();
});

let n = 0;
const event = (over: Partial<EventToWrite> = {}): EventToWrite => ({
  customerId: c.id,
  metric: 'api_calls',
  quantity: '1',
  idempotencyKey: `direct-${++n}`,
  ...over,
});
const prepared = async () =>
  (await db.raw<{ rows: { name: string }[] }>(`select name from pg_prepared_statements where name like 'usage-%write-%' order by name`)).rows.map((r) =>
    r.name.replace(/-[0-9a-f]{16}$/, ''),
  );
const whereIs = async (key: string) =>
  (
    await t.db.raw<{ rows: { table: string }[] }>(`select tableoid::regclass::text as table from usage_events where idempotency_key = ?`, [key])
  ).rows.map((r) => r.table);
const rowsOf = async (table: string) => Number((await t.db.raw<{ rows: { n: string }[] }>(`select count(*) as n from ${table}`)).rows[0]!.n);
const make = (month: string) => maintainUsagePartitions(t.db, { audit: t.c.audit, now: new Date(`${month}-15T10:00:00Z`), ahead: 0 });

test('when every event falls in the current month and its partition is attached, then the write goes into the partition directly; an event of another month sends it through usage_events', async () => {
  await make('2091-03');
  const now = Date.parse('2091-03-15T12:00:00Z');
  const direct = event();
  const [out] = await repo.write(db, [direct], 'local', now);
  expect(out).toMatchObject({ created: true, conflict: false, receivedMs: expect.any(Number) });
  expect(await whereIs(direct.idempotencyKey)).toEqual(['usage_events_2091_03']);
  expect(await prepared()).toEqual(['usage-direct-lookback-write']);

  // The same key again is a replay through the same statement; another body, a conflict.
  const [again] = await repo.write(db, [direct], 'local', now);
  expect(again).toMatchObject({ id: out!.id, created: false, conflict: false });
  const [other] = await repo.write(db, [{ ...direct, quantity: '2' }], 'local', now);
  expect(other).toMatchObject({ id: out!.id, created: false, conflict: true });

  // Control: one event of February in the write, and it is routed by usage_events.
  const feb = event({ occurredAt: new Date('2091-02-27T10:00:00Z') });
  const mar = event({ occurredAt: new Date('2091-03-14T10:00:00Z') });
  const outs = await repo.write(db, [feb, mar], 'local', now);
  expect(outs.map((o) => o.created)).toEqual([true, true]);
  expect(await whereIs(mar.idempotencyKey)).toEqual(['usage_events_2091_03']);
  expect(await whereIs(feb.idempotencyKey)).toEqual(['usage_events_2091_02']);
  expect(await prepared()).toEqual(['usage-direct-lookback-write', 'usage-write']);
  const daily = await t.db('usage_daily').where({ customer_id: c.id }).sum({ q: 'quantity' }).first();
  expect(Number(daily!.q)).toBe(3);
});

test('when the partition is detached after the write learnt it was attached, then nothing goes into the detached table: the write goes through usage_events', async () => {
  const now = Date.parse('2091-03-16T12:00:00Z');
  const before = event();
  await repo.write(db, [before], 'local', now);
  expect(await whereIs(before.idempotencyKey)).toEqual(['usage_events_2091_03']);
  const inTable = await rowsOf('usage_events_2091_03');

  await t.db.raw('alter table usage_events detach partition usage_events_2091_03');
  const after = event();
  const [out] = await repo.writeAllOrNothing(db, [after, event()], 'local', now);
  expect(out).toMatchObject({ created: true });
  expect(await whereIs(after.idempotencyKey)).toEqual(['usage_events_default']);
  expect(await rowsOf('usage_events_2091_03')).toBe(inTable);
  // And the next write does not try the detached table again.
  const next = event();
  await repo.write(db, [next], 'local', now);
  expect(await whereIs(next.idempotencyKey)).toEqual(['usage_events_default']);
  expect(await rowsOf('usage_events_2091_03')).toBe(inTable);
  await t.db.raw('drop table usage_events_2091_03');
});

test('when the partition is dropped after the write learnt it was attached, then the write is answered and stored through usage_events', async () => {
  await make('2091-05');
  const now = Date.parse('2091-05-10T12:00:00Z');
  const first = event();
  await repo.write(db, [first], 'local', now);
  expect(await whereIs(first.idempotencyKey)).toEqual(['usage_events_2091_05']);

  await t.db.raw('drop table usage_events_2091_05');
  const second = event();
  const [out] = await repo.write(db, [second], 'local', now);
  expect(out).toMatchObject({ created: true, conflict: false });
  expect(await whereIs(second.idempotencyKey)).toEqual(['usage_events_default']);
});

test('when a table of the month exists but is not attached (prepared by the maintenance), then it is never written to, now or after the minute the write looks again', async () => {
  await t.db.raw('create table usage_events_2091_07 (like usage_events including all)');
  await t.db.raw('create unique index on usage_events_2091_07 (customer_id, idempotency_key, occurred_month)');
  const now = Date.parse('2091-07-10T12:00:00Z');
  const keys = [event(), event()];
  await repo.write(db, [keys[0]!], 'local', now);
  await repo.write(db, [keys[1]!], 'local', now + 61_000);
  for (const k of keys) expect(await whereIs(k.idempotencyKey)).toEqual(['usage_events_default']);
  expect(await rowsOf('usage_events_2091_07')).toBe(0);
});
