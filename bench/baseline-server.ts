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

const COLUMNS = '(id, customer_id, metric, quantity, occurred_at, idempotency_key, request_hash, state)';

app.post('/usage', async (req, res) => {
  const e = req.body as { metric: string; quantity: number; occurred_at?: string; idempotency_key: string };
  await pool.query(
    `insert into bench_baseline_events ${COLUMNS} values (gen_random_uuid(), $1, $2, $3, coalesce($4::timestamptz, now()), $5, '', 'local') on conflict do nothing`,
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
    return `(gen_random_uuid(), $${p + 1}, $${p + 2}, $${p + 3}, now(), $${p + 4}, '', 'local')`;
  });
  await pool.query(`insert into bench_baseline_events ${COLUMNS} values ${rows.join(', ')} on conflict do nothing`, values);
  res.status(201).json({ ok: true, count: events.length });
});

const server = app.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('baseline listening'));
process.on('SIGTERM', () => server.close(() => void pool.end().then(() => process.exit(0))));
