import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import type pg from 'pg';

/**
 * Named (prepared) statements run straight through pg on a connection of knex's pool: each
 * connection parses and plans the text once, not per call, and knex's query building (which walks
 * every binding, array elements included) has nothing to add to a fixed text with ready values.
 * Why and when to delete it: docs/decisions/named-statement.md.
 */
export interface NamedStatement {
  /** `<label>-<first 16 hex digits of the text's SHA-256>`: another text is another statement. */
  readonly name: string;
  readonly text: string;
}

/**
 * A statement named after a hash of its text. pg prepares a name once per connection and refuses
 * the same name with another text, so a name written by hand must change with every edit of the
 * text; here it does by itself.
 */
export function namedStatement(label: string, text: string): NamedStatement {
  return { name: `${label}-${createHash('sha256').update(text).digest('hex').slice(0, 16)}`, text };
}

/**
 * The parts of knex's client this module reaches (knex 3: Client.acquireConnection and
 * Client.releaseConnection, which take a connection from the pool and give it back; with the pg
 * dialect the connection is a pg.Client). They are knex internals, not its documented API:
 * tests/unit/named-statement.test.ts fails if their shape changes.
 */
export interface PooledConnections {
  acquireConnection(): Promise<pg.ClientBase>;
  releaseConnection(connection: pg.ClientBase): Promise<unknown>;
}

const checked = new WeakSet<object>();

/** knex's client as PooledConnections, checked once per client (a clear error, not a TypeError mid-request). */
export function pooledConnections(db: Knex): PooledConnections {
  const client = db.client as Partial<PooledConnections> & object;
  if (!checked.has(client)) {
    if (typeof client.acquireConnection !== 'function' || typeof client.releaseConnection !== 'function') {
      throw new Error("knex's client has no acquireConnection/releaseConnection: named statements need src/db/named-statement.ts revisited");
    }
    checked.add(client);
  }
  return client as PooledConnections;
}

/**
 * Runs a named statement on a pooled connection of its own and returns its rows. Never inside a
 * transaction: the statement must be all or nothing by itself.
 */
export async function runNamed<R>(db: Knex, statement: NamedStatement, values: unknown[]): Promise<R[]> {
  if (db.isTransaction) throw new Error('runNamed runs on a pooled connection of its own, not inside a transaction');
  const pool = pooledConnections(db);
  const conn = await pool.acquireConnection();
  try {
    return (await conn.query<R & pg.QueryResultRow>({ name: statement.name, text: statement.text, values })).rows;
  } finally {
    await pool.releaseConnection(conn);
  }
}

/**
 * Runs a named statement in the caller's transaction, on the transaction's own connection (knex's
 * transaction client hands out that one connection and takes nothing back): the statement commits or
 * rolls back with the rest of the transaction (a usage bundle's events with its receipt).
 */
export async function runNamedInTransaction<R>(trx: Knex, statement: NamedStatement, values: unknown[]): Promise<R[]> {
  if (!trx.isTransaction) throw new Error('runNamedInTransaction runs inside a transaction (runNamed runs outside one)');
  const pool = pooledConnections(trx);
  const conn = await pool.acquireConnection();
  try {
    return (await conn.query<R & pg.QueryResultRow>({ name: statement.name, text: statement.text, values })).rows;
  } finally {
    await pool.releaseConnection(conn);
  }
}
