/**
 * A retention run killed (SIGKILL, in a child process: usage-retention-crash-child.ts) between
 * archiving a month and dropping it, at both points (archived: still attached; detached: out of
 * usage_events, not dropped). A second run finishes the job: the archive verifies, the partition is
 * gone, every event is in the archive exactly once, and usage_daily is unchanged.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import request from 'supertest';
import { createCustomer } from '../helpers/factories';
import { createIsolatedTestApp } from '../helpers/fresh-database';
import { dailyOf, retentionDeps, seedMonth, tableState } from '../helpers/usage-retention';
import { runUsageRetention } from '../../src/modules/usage-retention/usage-retention-service';
import { runTsChild } from '../helpers/ts-child';

const CHILD = path.join(__dirname, 'usage-retention-crash-child.ts');
let iso: Awaited<ReturnType<typeof createIsolatedTestApp>>;
let dir: string;

const child = (env: Record<string, string>) => runTsChild(CHILD, env);

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'usage-archives-crash-'));
  iso = await createIsolatedTestApp('usage_retention_crash', { USAGE_ARCHIVE_DIR: dir });
});
afterAll(async () => {
  await iso.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test.each([
  ['archived', '2024-01', 'attached'],
  ['detached', '2024-02', 'detached'],
])(
  'when the process running retention is killed after "%s", then the next run finishes: the archive verifies, the partition is gone, nothing lost or doubled',
  async (step, month, left) => {
    const table = `usage_events_${month.replace('-', '_')}`;
    const customers = [(await createCustomer(iso.t)).id, (await createCustomer(iso.t)).id];
    await seedMonth(iso.t.db, month, customers, 3000);
    const keys: string[] = (await iso.t.db.raw(`select idempotency_key from ?? order by 1`, [table])).rows.map(
      (r: { idempotency_key: string }) => r.idempotency_key,
    );
    const daily = await dailyOf(iso.t.db, month);

    const run = await child({ DATABASE_URL: iso.url, ARCHIVE_DIR: dir, CRASH_AFTER: step });
    expect({ signal: run.signal, stderr: run.stderr.trim() }).toEqual({ signal: 'SIGKILL', stderr: `killed after ${step}` });
    expect(await tableState(iso.t.db, month)).toBe(left);
    expect(
      await iso.t
        .db('usage_archives')
        .where({ month: `${month}-01` })
        .first(),
    ).toMatchObject({ dropping_at: expect.any(Date), dropped_at: null });

    const next = await runUsageRetention(retentionDeps(iso.t, dir));
    expect([...next!.dropped, ...next!.finished]).toEqual([month]);
    expect(await tableState(iso.t.db, month)).toBe('gone');
    const v = await request(iso.t.app).post(`/api/usage/archives/${month}/verify`).set('Authorization', `Bearer ${iso.t.adminToken}`);
    expect(v.status).toBe(200);
    expect(v.body.rows).toBe(3000);
    const archived = gunzipSync(fs.readFileSync(path.join(dir, `${table}.ndjson.gz`)))
      .toString('utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { idempotency_key: string }).idempotency_key);
    expect(archived.sort()).toEqual(keys);
    expect(await dailyOf(iso.t.db, month)).toEqual(daily);
    expect(await iso.t.db('audit_log').where({ target_id: month, action: 'usage.partition_drop' })).toHaveLength(1);
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('.'))).toEqual([]);
  },
  120_000,
);
