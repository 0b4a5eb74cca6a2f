// For the knex CLI (`npx knex --knexfile knexfile.ts ...`) against DATABASE_URL.
// The service itself and `npm run migrate` use the same migration source.
import 'dotenv/config';
import type { Knex } from 'knex';
import { migrationConfig } from './src/db/migration-source';

const config: Knex.Config = {
  client: 'pg',
  connection: process.env.DATABASE_URL,
  migrations: migrationConfig(),
};

export default config;
