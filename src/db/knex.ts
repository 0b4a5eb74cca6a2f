import knexFactory, { Knex } from 'knex';
import pg from 'pg';

// Return bigint (int8) and numeric as strings, never lossy JS numbers; counts we
// know are small are cast in SQL. Dates stay Date objects.
pg.types.setTypeParser(pg.types.builtins.INT8, (v: string) => v);

export interface KnexOptions {
  url: string;
  poolMax: number;
  applicationName?: string;
}

export function createKnex({ url, poolMax, applicationName = 'billing-service' }: KnexOptions): Knex {
  return knexFactory({
    client: 'pg',
    connection: { connectionString: url, application_name: applicationName },
    pool: { min: 0, max: poolMax },
    // Fail fast when the database is away: a request gets a 503, not a hang.
    acquireConnectionTimeout: 5_000,
  });
}
