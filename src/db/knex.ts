import knexFactory, { Knex } from 'knex';
import pg from 'pg';
import type { Logger } from 'pino';

// Return bigint (int8) and numeric (the default) as strings, never lossy JS numbers; counts we
// know are small are cast in SQL. Dates stay Date objects.
pg.types.setTypeParser(pg.types.builtins.INT8, (v: string) => v);
// Calendar days stay 'YYYY-MM-DD' strings: a Date would shift them into the local time zone.
pg.types.setTypeParser(pg.types.builtins.DATE, (v: string) => v);

export interface KnexOptions {
  url: string;
  poolMax: number;
  applicationName?: string;
  /** Where knex's own warnings go (otherwise the console). */
  logger?: Logger;
}

/** How many stripes each daily usage total has (see usage_daily). */
export const ROLLUP_SHARDS = 16;

export function createKnex({ url, poolMax, applicationName = 'billing-service', logger }: KnexOptions): Knex {
  // Each pooled connection adds to its own stripe of the daily totals, so two statements from
  // this instance never wait on each other's row lock. The random start spreads instances.
  let nextShard = Math.floor(Math.random() * ROLLUP_SHARDS);
  return knexFactory({
    ...(logger
      ? {
          log: {
            warn: (m: unknown) => logger.warn({ knex: String(m) }, 'knex warning'),
            error: (m: unknown) => logger.error({ knex: String(m) }, 'knex error'),
            deprecate: (m: unknown) => logger.warn({ knex: String(m) }, 'knex deprecation'),
            debug: (m: unknown) => logger.debug({ knex: m }, 'knex debug'),
          },
        }
      : {}),
    client: 'pg',
    connection: { connectionString: url, application_name: applicationName },
    pool: {
      min: 0,
      max: poolMax,
      afterCreate(conn: pg.Client, done: (err: Error | null, conn: pg.Client) => void) {
        const shard = nextShard++ % ROLLUP_SHARDS;
        conn.query(`set billing.rollup_shard = ${shard}`, (err: Error | null) => done(err, conn));
      },
    },
    // Fail fast when the database is away: a request gets a 503, not a hang.
    acquireConnectionTimeout: 5_000,
  });
}
