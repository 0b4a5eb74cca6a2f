/**
 * The naive implementation the service is measured against: Express 5, express.json, a pg
 * pool, and one INSERT ... ON CONFLICT DO NOTHING per request (a 100-row multi-row INSERT for
 * a batch). No authentication, no validation, no logging. Same database, and a table with the
 * same columns, constraints, indexes and foreign key as usage_events.
 */
import express from 'express';
import { Pool } from 'pg';

const pool = new Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.DB_POOL_MAX ?? 10) });
const customerId = process.env.BENCH_CUSTOMER_ID!;
const app = express();
app.use(express.json({ limit: '1mb' }));

// usage_events' columns as partitioned by month (migration 20261208000000). The naive write keeps no
// request fingerprint: the column's 16 bytes are zeros, as cheap as the old empty string was.
const COLUMNS = '(occurred_at, id, customer_id, occurred_month, state, request_hash, metric, quantity, idempotency_key)';
const NO_HASH = "'\\x00000000000000000000000000000000'::bytea";

app.post('/usage', async (req, res) => {
  const e = req.body as { metric: string; quantity: number; occurred_at?: string; idempotency_key: string };
  await pool.query(
    `insert into bench_baseline_events ${COLUMNS}
     select t, gen_random_uuid(), $1, usage_month(t), 'l', ${NO_HASH}, $2, $3, $5 from (select coalesce($4::timestamptz, now()) as t) s
     on conflict do nothing`,
    [customerId, e.metric, e.quantity, e.occurred_at ?? null, e.idempotency_key],
  );
  res.status(201).json({ ok: true });
});

app.post('/usage/batch', async (req, res) => {
  const { events } = req.body as { events: { metric: string; quantity: number; idempotency_key: string }[] };
  const values: unknown[] = [];
  const rows = events.map((e, i) => {
    values.push(customerId, e.metric, e.quantity, e.idempotency_key);
    const p = i * 4;
    return `(now(), gen_random_uuid(), $${p + 1}, usage_month(now()), 'l', ${NO_HASH}, $${p + 2}, $${p + 3}, $${p + 4})`;
  });
  await pool.query(`insert into bench_baseline_events ${COLUMNS} values ${rows.join(', ')} on conflict do nothing`, values);
  res.status(201).json({ ok: true, count: events.length });
});

const server = app.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('baseline listening'));
process.on('SIGTERM', () => server.close(() => void pool.end().then(() => process.exit(0))));
