/**
 * src/db/named-statement.ts reaches into knex's client (acquireConnection / releaseConnection, not
 * knex's documented API): these tests fail if a knex upgrade changes what it reaches.
 */
import type { Knex } from 'knex';
import pg from 'pg';
import { createKnex } from '../../src/db/knex';
import { namedStatement, pooledConnections, runNamed, runNamedInTransaction } from '../../src/db/named-statement';
import { testDatabaseUrl } from '../helpers/test-app';

let db: Knex;
beforeAll(() => {
  // One connection: what one statement prepares, the next one sees.
  db = createKnex({ url: testDatabaseUrl(), poolMax: 1 });
});
afterAll(async () => {
  await db.destroy();
});

/** Connections of knex's pool in use (tarn, knex's pool). */
const inUse = () => (db.client as { pool: { numUsed(): number } }).pool.numUsed();

test('when a connection is taken from knex’s client, then it is a pg client of its pool, and giving it back frees it', async () => {
  const pool = pooledConnections(db);
  expect(inUse()).toBe(0);
  const conn = await pool.acquireConnection();
  try {
    expect(conn).toBeInstanceOf(pg.Client);
    expect(inUse()).toBe(1);
    expect((await conn.query<{ one: number }>('select 1 as one')).rows).toEqual([{ one: 1 }]);
  } finally {
    await pool.releaseConnection(conn);
  }
  expect(inUse()).toBe(0);
  // Given back to the pool, not closed: the next statement runs on it.
  expect(await runNamed<{ two: number }>(db, namedStatement('test-two', 'select 2 as two'), [])).toEqual([{ two: 2 }]);
  expect(inUse()).toBe(0);
});

test('when a named statement runs, then its connection keeps it prepared under its name, with its values bound', async () => {
  const stmt = namedStatement('test-echo', 'select $1::int + 1 as n');
  expect(await runNamed<{ n: number }>(db, stmt, [41])).toEqual([{ n: 42 }]);
  expect(await runNamed<{ n: number }>(db, stmt, [1])).toEqual([{ n: 2 }]);
  const prepared = await runNamed<{ name: string; statement: string }>(
    db,
    namedStatement('test-prepared', 'select name, statement from pg_prepared_statements'),
    [],
  );
  expect(prepared).toContainEqual({ name: stmt.name, statement: stmt.text });
});

test('when a statement’s text changes, then so does its name; the same text keeps it', () => {
  const a = namedStatement('usage-write', 'select 1');
  expect(a.name).toMatch(/^usage-write-[0-9a-f]{16}$/);
  expect(namedStatement('usage-write', 'select 1').name).toBe(a.name);
  expect(namedStatement('usage-write', 'select 1 ').name).not.toBe(a.name);
});

test('when a named statement is run inside a transaction, then it is refused (it needs a connection of its own)', async () => {
  await expect(db.transaction((trx) => runNamed(trx, namedStatement('test-trx', 'select 1'), []))).rejects.toThrow(/not inside a transaction/);
  // Control: outside one it runs.
  expect(await runNamed(db, namedStatement('test-trx', 'select 1 as x'), [])).toEqual([{ x: 1 }]);
});

test('when knex’s client lacks the connection methods, then the error says what to revisit', () => {
  const changed = { client: { acquireConnection: 'not a function' }, isTransaction: false } as unknown as Knex;
  expect(() => pooledConnections(changed)).toThrow(/acquireConnection\/releaseConnection.*named-statement\.ts/);
});

test('when a named statement runs in a transaction, then it is part of it: what it wrote is seen inside and rolled back with it', async () => {
  await db.raw('create table if not exists named_in_trx (n int)');
  const insert = namedStatement('test-insert-in-trx', 'insert into named_in_trx (n) values ($1) returning n');
  await expect(
    db.transaction(async (trx) => {
      expect(await runNamedInTransaction(trx, insert, [7])).toEqual([{ n: 7 }]);
      expect((await trx('named_in_trx').where({ n: 7 })).length).toBe(1);
      throw new Error('roll back');
    }),
  ).rejects.toThrow('roll back');
  expect(await db('named_in_trx').where({ n: 7 })).toEqual([]);
  // Outside a transaction it is refused (runNamed is for that).
  await expect(runNamedInTransaction(db, insert, [8])).rejects.toThrow(/inside a transaction/);
  await db.raw('drop table named_in_trx');
});
