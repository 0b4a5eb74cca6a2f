/**
 * Ingestion while retention detaches and drops an old month: two app instances on one database post
 * usage into the current month, under load, while a third party archives, detaches and drops a month
 * of 50,000 events. Every request is answered 201 and every event is stored once, with its daily total.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { createCustomer, type CreatedCustomer } from '../helpers/factories';
import { createIsolatedTestApp } from '../helpers/fresh-database';
import { createTestApp, type TestApp } from '../helpers/test-app';
import { retentionDeps, seedMonth, tableState } from '../helpers/usage-retention';
import { runUsageRetention } from '../../src/modules/usage-retention/usage-retention-service';

let iso: Awaited<ReturnType<typeof createIsolatedTestApp>>;
let second: TestApp;
let dir: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'usage-archives-load-'));
  const env = { USAGE_ARCHIVE_DIR: dir, RATE_LIMIT_USAGE_ADDRESS: '1000000/1m' };
  iso = await createIsolatedTestApp('usage_retention_load', env);
  second = await createTestApp(env, { databaseUrl: iso.url });
});
afterAll(async () => {
  await second.close();
  await iso.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('when a month is archived, detached and dropped while two instances ingest under load, then every write is answered 201 and stored once', async () => {
  const old = await createCustomer(iso.t);
  await seedMonth(iso.t.db, '2024-01', [old.id], 50_000);
  const customers: CreatedCustomer[] = [await createCustomer(iso.t), await createCustomer(iso.t)];

  let done = false;
  const statuses: number[] = [];
  let slowest = 0;
  let n = 0;
  const writer = async (t: TestApp, c: CreatedCustomer) => {
    while (!done) {
      const key = `load-${n++}`;
      const started = Date.now();
      const res = await request(t.app).post('/api/usage').set('X-API-Key', c.apiKey).send({ metric: 'api_calls', quantity: 1, idempotency_key: key });
      slowest = Math.max(slowest, Date.now() - started);
      statuses.push(res.status);
    }
  };
  const writers = [iso.t, second].flatMap((t) => customers.flatMap((c) => Array.from({ length: 4 }, () => writer(t, c))));
  await new Promise((r) => setTimeout(r, 300));
  const t0 = Date.now();
  const steps: string[] = [];
  const run = await runUsageRetention(retentionDeps(iso.t, dir, { lockTimeoutMs: 100, faults: { after: (s) => void steps.push(`${s} ${Date.now() - t0}`) } }));
  await new Promise((r) => setTimeout(r, 300));
  done = true;
  await Promise.all(writers);

  expect(run!.dropped).toEqual(['2024-01']);
  expect(await tableState(iso.t.db, '2024-01')).toBe('gone');
  expect(statuses.length).toBeGreaterThan(50);
  expect([...new Set(statuses)]).toEqual([201]);
  const ids = customers.map((c) => c.id);
  const stored = await iso.t.db('usage_events').whereIn('customer_id', ids).count<{ count: string }[]>('* as count');
  const daily = await iso.t.db('usage_daily').whereIn('customer_id', ids).sum<{ sum: string }[]>('events as sum');
  expect(Number(stored[0]!.count)).toBe(statuses.length);
  expect(Number(daily[0]!.sum)).toBe(statuses.length);
  // The figure for the report: the slowest write while the month went.
  process.stdout.write(`usage-retention-ingestion: ${statuses.length} writes, slowest ${slowest} ms; steps (ms from the start): ${steps.join(', ')}\n`);
}, 120_000);
