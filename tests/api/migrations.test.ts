import type { Knex } from 'knex';
import { createKnex } from '../../src/db/knex';
import { migrateLatest, migrationConfig, pendingMigrations } from '../../src/db/migration-source';
import { testDatabaseUrl } from '../helpers/test-app';

let admin: Knex;
let db: Knex;
const name = `migrations_${Date.now()}_${process.pid}`;

beforeAll(async () => {
  admin = createKnex({ url: testDatabaseUrl(), poolMax: 1 });
  await admin.raw('create database ??', [name]);
  const url = new URL(testDatabaseUrl());
  url.pathname = `/${name}`;
  db = createKnex({ url: url.toString(), poolMax: 2 });
});
afterAll(async () => {
  await db.destroy();
  await admin.raw('drop database ?? with (force)', [name]);
  await admin.destroy();
});

const tables = async () =>
  (await db('information_schema.tables').where({ table_schema: 'public' }).whereNot('table_name', 'like', 'knex_%').pluck('table_name')).sort();

test('when every migration is applied, rolled back and applied again, then the schema comes back the same', async () => {
  expect((await pendingMigrations(db)).length).toBeGreaterThan(0);
  const applied = await migrateLatest(db);
  expect(applied.length).toBeGreaterThan(0);
  expect(await pendingMigrations(db)).toEqual([]);
  const schema = await tables();
  expect(schema).toEqual(expect.arrayContaining(['api_keys', 'audit_log', 'customers']));

  await db.migrate.rollback(migrationConfig(), true);
  expect(await tables()).toEqual([]);

  expect(await migrateLatest(db)).toEqual(applied);
  expect(await tables()).toEqual(schema);
});

test('when the audit log’s client request id is rolled back on its own, then only its column and index go, and it comes back', async () => {
  await migrateLatest(db);
  const name = '20261128090000_add_client_request_id_to_audit_log';
  const columns = async () => Object.keys(await db('audit_log').columnInfo()).sort();
  const indexes = async () => (await db('pg_indexes').where({ tablename: 'audit_log' }).pluck('indexname')).sort();
  const [withColumn, withIndex] = [await columns(), await indexes()];
  expect(withColumn).toContain('client_request_id');
  expect(withIndex).toContain('audit_log_client_request_idx');

  await db.migrate.down({ ...migrationConfig(), name });
  expect(await pendingMigrations(db)).toEqual([name]);
  expect(await columns()).toEqual(withColumn.filter((c) => c !== 'client_request_id'));
  expect(await indexes()).toEqual(withIndex.filter((i) => i !== 'audit_log_client_request_idx'));

  await migrateLatest(db);
  expect(await columns()).toEqual(withColumn);
  expect(await indexes()).toEqual(withIndex);
});

test('when plans carry entitlements.seats, then the migration removes it without setting an instance limit, with an audit row each; down puts it back', async () => {
  await migrateLatest(db);
  const name = '20261207030000_remove_seats_from_plan_entitlements';
  await db.migrate.down({ ...migrationConfig(), name });
  expect(await pendingMigrations(db)).toEqual([name]);
  const plan = (code: string, entitlements: object) => ({
    id: `0192f000-0000-7000-8000-${code.padStart(12, '0')}`,
    code,
    name: code,
    entitlements: JSON.stringify(entitlements),
  });
  await db('plans').insert([
    plan('1', { features: ['sso'], limits: { projects: 3 }, seats: 5 }),
    plan('2', { features: [], limits: { instances: 2 }, seats: null }),
    // Control: a plan without seats is left as it is, with no audit row.
    plan('3', { features: [], limits: { instances: 1 } }),
  ]);
  const entitlements = async () => Object.fromEntries((await db('plans').orderBy('code').select('code', 'entitlements')).map((r) => [r.code, r.entitlements]));
  const audit = async (action: string) =>
    (await db('audit_log').where({ action }).orderBy('id').select('actor', 'target_type', 'target_id', 'details')).map((r) => ({
      ...r,
      details: { code: r.details.code, seats: r.details.seats },
    }));

  await migrateLatest(db);
  expect(await entitlements()).toEqual({
    '1': { features: ['sso'], limits: { projects: 3 } },
    '2': { features: [], limits: { instances: 2 } },
    '3': { features: [], limits: { instances: 1 } },
  });
  const id = (code: string) => plan(code, {}).id;
  expect(await audit('plan.seats_removed')).toEqual([
    { actor: 'system', target_type: 'plan', target_id: id('1'), details: { code: '1', seats: 5 } },
    { actor: 'system', target_type: 'plan', target_id: id('2'), details: { code: '2', seats: null } },
  ]);

  await db.migrate.down({ ...migrationConfig(), name });
  expect(await entitlements()).toEqual({
    '1': { features: ['sso'], limits: { projects: 3 }, seats: 5 },
    '2': { features: [], limits: { instances: 2 }, seats: null },
    '3': { features: [], limits: { instances: 1 } },
  });
  expect((await audit('plan.seats_restored')).map((r) => r.details)).toEqual([
    { code: '1', seats: 5 },
    { code: '2', seats: null },
  ]);

  await migrateLatest(db);
  expect(Object.values(await entitlements()).filter((e) => 'seats' in e)).toEqual([]);
  await db('audit_log').delete();
  await db('plans').delete();
});
