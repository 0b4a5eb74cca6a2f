/**
 * Usage thresholds across two real server processes (src/server.ts) on one database: a customer is
 * driven across every threshold of its allowance by both at once, several rounds; each process
 * checks with its own watch and its own cache of deals. Then both stop cleanly (SIGTERM: a stop
 * checks what is still marked), and each threshold, and the exhaustion, was announced exactly once.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client as PgClient } from 'pg';
import { call, freePort, type Running, startServer, waitFor } from '../helpers/server-process';
import { testDatabaseUrl } from '../helpers/test-app';

const ADMIN = randomBytes(32).toString('hex');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-thresholds-'));
const running: Running[] = [];
let db: PgClient;

afterAll(async () => {
  for (const r of running) if (r.child.exitCode === null) r.child.kill('SIGKILL');
  await db?.end();
  fs.rmSync(work, { recursive: true, force: true });
});

interface Instance {
  port: number;
  r: Running;
}

async function launch(name: string): Promise<Instance> {
  const port = await freePort();
  const r = startServer({
    NODE_ENV: 'test',
    DATABASE_URL: testDatabaseUrl(),
    PORT: String(port),
    DATA_DIR: path.join(work, name),
    ADMIN_API_TOKEN: ADMIN,
    RATE_LIMIT_API: '100000/1m',
    RATE_LIMIT_USAGE: '100000/1m',
    RATE_LIMIT_USAGE_ADDRESS: '100000/1m',
  });
  running.push(r);
  return { port, r };
}

type Json = Record<string, any>;
async function ok(i: Instance, method: string, p: string, auth: { admin: true } | { key: string }, status: number, body?: unknown): Promise<Json> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if ('admin' in auth) headers.Authorization = `Bearer ${ADMIN}`;
  else headers['X-API-Key'] = auth.key;
  const res = await call(i.port, method, p, headers, body === undefined ? undefined : JSON.stringify(body));
  if (res.status !== status) throw new Error(`${method} ${p}: expected ${status}, got ${res.status} ${res.body}`);
  return JSON.parse(res.body || 'null') as Json;
}
const admin = { admin: true } as const;

test('when two server processes ingest at once across every threshold, then each is announced exactly once (five customers, each its own round)', async () => {
  db = new PgClient({ connectionString: testDatabaseUrl() });
  await db.connect();
  const [a, b] = [await launch('a'), await launch('b')];
  await Promise.all([waitFor(a.r, /listening/, 120_000), waitFor(b.r, /listening/, 120_000)]);

  const code = `thr-${randomBytes(5).toString('hex')}`;
  await ok(a, 'POST', '/api/plans', admin, 201, {
    code,
    name: 'Thresholds',
    entitlements: { features: [], limits: { api_calls: 1000 }, overage: { api_calls: 1.25 }, thresholds: [50, 80, 100] },
  });
  const customers: string[] = [];
  for (let round = 0; round < 5; round++) {
    const created = await ok(a, 'POST', '/api/customers', admin, 201, {
      email: `thr-${randomBytes(6).toString('hex')}@example.com`,
      company_name: 'Thresholds',
    });
    const id = created.customer.id as string;
    customers.push(id);
    await ok(b, 'POST', `/api/customers/${id}/subscriptions`, admin, 201, { plan: code });
    // 40 reports of 40 (1,600 in all), singles and batches, alternately to each process, all at once.
    await Promise.all(
      Array.from({ length: 40 }, (_, i) => {
        const via = i % 2 ? b : a;
        const key = { key: created.api_key as string };
        if (i % 4 < 2) return ok(via, 'POST', '/api/usage', key, 201, { metric: 'api_calls', quantity: 40, idempotency_key: `p-${round}-${i}` });
        return ok(via, 'POST', '/api/usage', key, 201, {
          events: [0, 1, 2, 3].map((j) => ({ metric: 'api_calls', quantity: 10, idempotency_key: `p-${round}-${i}-${j}` })),
        });
      }),
    );
  }

  // A clean stop checks whatever is still marked; after it, every announcement there will be is written.
  for (const i of [a, b]) i.r.child.kill('SIGTERM');
  expect(await a.r.exited).toBe(0);
  expect(await b.r.exited).toBe(0);

  for (const id of customers) {
    const { rows } = await db.query<{ id: string; type: string; data: Json }>(
      `select id, type, data from events where customer_id = $1 and type in ('usage.threshold_crossed', 'usage.allowance_exhausted')`,
      [id],
    );
    expect(rows.map((e) => (e.type === 'usage.threshold_crossed' ? `threshold ${e.data.threshold_percent}` : `exhausted ${e.data.blocks_at}`)).sort()).toEqual([
      'exhausted 1250',
      'threshold 100',
      'threshold 50',
      'threshold 80',
    ]);
    for (const e of rows) {
      const at = e.type === 'usage.threshold_crossed' ? e.data.threshold_percent * 10 : 1250;
      expect(Number(e.data.quantity)).toBeGreaterThanOrEqual(at);
      expect(Number(e.data.quantity)).toBeLessThanOrEqual(1600);
    }
    const crossings = await db.query<{ event_id: string }>('select event_id from usage_threshold_crossings where customer_id = $1', [id]);
    expect(crossings.rows.map((r) => r.event_id).sort()).toEqual(rows.map((e) => e.id).sort());
  }
}, 240_000);
