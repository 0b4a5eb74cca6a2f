/**
 * npm run bench:bundles: what applying a usage bundle costs, against the same events sent online.
 *
 * For each size in BENCH_BUNDLE_SIZES (10000,100000): one customer with an offline activation that
 * carries an instance key; a bundle of that many events (one metric, times spread over the last
 * 20 days), signed with the instance key, uploaded through POST /api/usage/bundles (the first upload
 * applies every event; the second answers the stored receipt), and the same number of other events
 * sent online as POST /api/usage batches of 1,000 (USAGE_MAX_BATCH), one after the other. Prints
 * events/s for each, the request and receipt sizes, and the rows counted afterwards.
 *
 * BENCH_DATABASE_URL (else TEST_DATABASE_URL, else an embedded PostgreSQL): a temporary database
 * is made there and dropped. Stripe is off (the upload's work is the database's).
 */
import { randomUUID, createHash, generateKeyPairSync } from 'node:crypto';
import os from 'node:os';
import type { AddressInfo } from 'node:net';
import { CompactSign, calculateJwkThumbprint, type JWK } from 'jose';
import { createKnex } from '../src/db/knex';
import { migrateLatest } from '../src/db/migration-source';
import { createCustomer, createPlan, subscribe } from '../tests/helpers/factories';
import { createTestApp } from '../tests/helpers/test-app';
import { benchDatabase } from './bench-database';

const SIZES = (process.env.BENCH_BUNDLE_SIZES ?? '10000,100000').split(',').map(Number);

async function post(
  base: string,
  path: string,
  headers: Record<string, string>,
  body: unknown,
): Promise<{ status: number; text: string; ms: number; bytes: number }> {
  const json = JSON.stringify(body);
  const started = performance.now();
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: json });
  const text = await res.text();
  return { status: res.status, text, ms: performance.now() - started, bytes: Buffer.byteLength(json) };
}

async function main(): Promise<void> {
  const { url, drop } = await benchDatabase('bundles');
  const migrator = createKnex({ url, poolMax: 2 });
  await migrateLatest(migrator);
  await migrator.destroy();
  process.env.TEST_DATABASE_URL = url;
  const max = Math.max(...SIZES);
  const t = await createTestApp(
    { LOG_LEVEL: 'warn', FORWARDER_ENABLED: 'false', USAGE_BUNDLE_MAX_EVENTS: String(max), USAGE_BUNDLE_MAX_BYTES: '64mb', RATE_LIMIT_USAGE: '100000/1m' },
    { databaseUrl: url },
  );
  const server = t.app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const admin = { Authorization: `Bearer ${t.adminToken}` };
  console.log(`${os.cpus().length} cores, load ${os.loadavg()[0]!.toFixed(1)}; bundle sizes ${SIZES.join(', ')} events; Stripe off`);
  try {
    const plan = await createPlan(t);
    for (const n of SIZES) {
      const c = await createCustomer(t);
      await subscribe(t, { customer: c, plan });
      // Events before the customer existed are refused: the customer is a month old.
      await t.db.raw('update customers set created_at = ? where id = ?', [new Date(Date.now() - 30 * 86_400_000), c.id]);
      const { privateKey, publicKey } = generateKeyPairSync('ed25519');
      const jwk = publicKey.export({ format: 'jwk' }) as JWK;
      const fingerprint = `bench-${randomUUID().slice(0, 8)}`;
      const activated = await post(base, `/api/customers/${c.id}/licenses`, admin, {
        fingerprint,
        ttl: '365d',
        instance_key: { kty: 'OKP', crv: 'Ed25519', x: jwk.x },
      });
      if (activated.status !== 201) throw new Error(`offline activation: ${activated.status} ${activated.text}`);
      const now = Date.now();
      const events = Array.from({ length: n }, (_, i) => ({
        metric: 'api_calls',
        quantity: (i % 7) + 1,
        occurred_at: new Date(now - 60_000 - Math.floor((i / n) * 20 * 86_400_000)).toISOString(),
        idempotency_key: `bench-bundle-${i}`,
      }));
      const payload = {
        format: 'usage-bundle/1',
        customer_id: c.id,
        fingerprint,
        bundle_id: randomUUID(),
        seq: 1,
        previous: null,
        created_at: new Date(now).toISOString(),
        events,
      };
      const kid = await calculateJwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x: jwk.x });
      const bundle = await new CompactSign(Buffer.from(JSON.stringify(payload)))
        .setProtectedHeader({ alg: 'EdDSA', typ: 'usage-bundle+jws', kid })
        .sign(privateKey);
      const key = { 'X-API-Key': c.apiKey };
      const first = await post(base, '/api/usage/bundles', key, { bundle });
      if (first.status !== 200) throw new Error(`upload: ${first.status} ${first.text.slice(0, 300)}`);
      const again = await post(base, '/api/usage/bundles', key, { bundle });
      const { receipt, receipt_claims: claims } = JSON.parse(first.text) as { receipt: string; receipt_claims: { applied: number; rejected: unknown[] } };
      if (claims.applied !== n) throw new Error(`applied ${claims.applied} of ${n} (${claims.rejected.length} rejected)`);
      const digest = createHash('sha256').update(bundle).digest('base64url').slice(0, 8);

      let online = 0;
      for (let i = 0; i < n; i += 1000) {
        const batch = events.slice(i, i + 1000).map((e) => ({ ...e, idempotency_key: `bench-online-${e.idempotency_key}`, occurred_at: undefined }));
        const r = await post(base, '/api/usage', key, { events: batch });
        if (r.status !== 201) throw new Error(`online: ${r.status} ${r.text.slice(0, 300)}`);
        online += r.ms;
      }
      const counted = await t.db('usage_events').where({ customer_id: c.id }).count<{ count: string }[]>({ count: '*' });
      const count = counted[0]?.count;
      console.log(
        `${n} events: bundle ${(first.bytes / 1e6).toFixed(1)} MB (${digest}…) applied in ${first.ms.toFixed(0)} ms (${Math.round(n / (first.ms / 1000))} events/s); ` +
          `again ${again.ms.toFixed(0)} ms (${again.status}, the stored receipt); online in batches of 1000: ${online.toFixed(0)} ms ` +
          `(${Math.round(n / (online / 1000))} events/s); receipt ${receipt.length} bytes; rows ${count} (expected ${2 * n})`,
      );
    }
  } finally {
    await t.close();
    await drop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
