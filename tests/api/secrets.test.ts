/**
 * The clear key is shown once and never kept: not in any table, not in any log line,
 * not in the audit trail, whatever the key is used for afterwards.
 */
import request from 'supertest';
import { createCustomer, issueKey } from '../helpers/factories';
import { createTestApp, TestApp } from '../helpers/test-app';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ LOG_LEVEL: 'trace' });
});
afterAll(() => t.close());

/** Every row of every table in the schema, as text: the equivalent of searching a dump. */
async function dumpDatabase(): Promise<string> {
  const tables = await t.db('information_schema.tables').select('table_name').where({ table_schema: 'public', table_type: 'BASE TABLE' });
  const parts: string[] = [];
  for (const { table_name } of tables) {
    const rows = await t.db.raw('select t::text as row from ?? as t', [table_name]);
    parts.push(...rows.rows.map((r: { row: string }) => r.row));
  }
  return parts.join('\n');
}

test('when keys are issued, used, rotated and refused, then neither a key nor its secret appears in the database, logs or audit rows', async () => {
  const c = await createCustomer(t);
  const rotated = await issueKey(t, c.id, { grace_period_seconds: 60 });
  const keys = [c.apiKey, rotated.apiKey];
  for (const k of keys) await request(t.app).get('/api/me').set('X-API-Key', k).expect(200);
  // A near-miss of a real key, and the key in the wrong header, must not leak either.
  const nearMiss = `${c.apiKey.slice(0, -1)}${c.apiKey.endsWith('A') ? 'B' : 'A'}`;
  await request(t.app).get('/api/me').set('X-API-Key', nearMiss).expect(401);
  await request(t.app).get('/api/customers').set('Authorization', `Bearer ${c.apiKey}`).expect(401);
  await request(t.app).get('/api/customers').set('Authorization', `Bearer ${t.adminToken}`).expect(200);
  await request(t.app).delete(`/api/customers/${c.id}/keys/${c.keyId}`).set('Authorization', `Bearer ${t.adminToken}`).expect(200);
  await request(t.app).get('/api/me').set('X-API-Key', c.apiKey).expect(401);
  await t.c.lastUsed.flush();

  const dump = await dumpDatabase();
  const logs = t.logs.join('');
  expect(dump.length).toBeGreaterThan(0);
  expect(logs).toContain('"url":"/api/me"'); // the requests were logged
  for (const k of [...keys, nearMiss]) {
    // The secret is everything after `cust_<uuid>_`; it may itself contain '_' (base64url).
    const secret = k.slice('cust_'.length + 36 + 1);
    const secretTail = k.slice(-35); // anything past the 8-character display start
    for (const [where, text] of [
      ['database', dump],
      ['logs', logs],
    ] as const) {
      expect([where, text.includes(k)]).toEqual([where, false]);
      expect([where, text.includes(secret)]).toEqual([where, false]);
      expect([where, text.includes(secretTail)]).toEqual([where, false]);
    }
  }
  expect(logs.includes(t.adminToken)).toBe(false);
  expect(dump.includes(t.adminToken)).toBe(false);
});
