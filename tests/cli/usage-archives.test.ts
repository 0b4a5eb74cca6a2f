import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createCustomer } from '../helpers/factories';
import { archivedEvent } from '../helpers/usage-retention';
import { writeArchive } from '../../src/modules/usage-retention/archive-files';
import { cli, startService, type Service } from './cli-harness';

/**
 * billing-admin usage archive list|verify|restore, through the admin client. The archive is written
 * straight into the service's USAGE_ARCHIVE_DIR, for a month of its own in the shared test database.
 */
let s: Service;
let env: Record<string, string>;
const month = `${1940 + (process.pid % 30)}-02`;
let dir: string;

beforeAll(async () => {
  s = await startService();
  env = { BILLING_API_URL: s.url, ADMIN_API_TOKEN: s.t.adminToken };
  dir = s.t.c.config.usage.archiveDir!;
  const c = await createCustomer(s.t);
  const at = `${month}-03T04:05:06.123456Z`;
  await writeArchive(
    dir,
    month,
    (async function* () {
      for (let i = 0; i < 3; i++) {
        yield archivedEvent(c.id, at, { quantity: '2.500000', idempotency_key: `cli-${randomBytes(6).toString('hex')}` });
      }
    })(),
    new Date(),
  );
});
afterAll(() => s.close());

test('when the archives are listed, then the month is there with its rows and file', async () => {
  const r = await cli(['usage', 'archive', 'list'], { env });
  expect(r.code).toBe(0);
  expect(r.stdout.split('\n')[0]).toMatch(/^MONTH +RAW EVENTS +ROWS +BYTES +FILE +DROPPED +RESTORED +KEEP UNTIL$/);
  expect(r.stdout).toMatch(new RegExp(`${month} +present +usage_events_${month.replace('-', '_')}\\.ndjson\\.gz`));
});

test('when a month is verified, then its rows and digest are shown; a bad month is a usage error from the service (422)', async () => {
  const r = await cli(['usage', 'archive', 'verify', month], { env });
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/^month +\d{4}-02\nrows +3\n/);
  expect(r.stderr).toContain(`The archive of ${month} verifies.`);
  const bad = await cli(['usage', 'archive', 'verify', '2024-13'], { env });
  expect(bad.code).not.toBe(0);
  expect(bad.stderr).toMatch(/month/);
});

test('when a month is restored twice, then the first puts the events back and the second adds nothing', async () => {
  const first = await cli(['usage', 'archive', 'restore', month, '--json'], { env });
  expect(first.code).toBe(0);
  const second = await cli(['usage', 'archive', 'restore', month, '--keep-days', '7'], { env });
  expect(second.code).toBe(0);
  expect(second.stderr).toMatch(/^Restored 0 of the 3 archived events of \d{4}-02 \(the others were there already\)\. Kept until \d{4}-/);
  expect(JSON.parse(first.stdout)).toMatchObject({ month, rows: 3, keep_until: null });
});

test('when the archive was tampered with, then verify fails with the reason', async () => {
  const file = path.join(dir, `usage_events_${month.replace('-', '_')}.ndjson.gz`);
  const bytes = fs.readFileSync(file);
  bytes[bytes.length - 5]! ^= 0xff;
  fs.writeFileSync(file, bytes);
  const r = await cli(['usage', 'archive', 'verify', month], { env });
  expect(r.code).not.toBe(0);
  expect(r.stderr).toContain(`the archive of ${month} does not verify: the file's sha256 is`);
});
