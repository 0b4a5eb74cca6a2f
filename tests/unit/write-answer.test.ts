/**
 * The usage write's answer (src/modules/usage/write-answer.ts): encoded by PostgreSQL, read back here.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { answerListSql, decodeOutcomes, decodeRefusal, decodeStored, refusalDetailSql } from '../../src/modules/usage/write-answer';
import { testDatabaseUrl } from '../helpers/test-app';

let client: pg.Client;
beforeAll(async () => {
  client = new pg.Client({ connectionString: testDatabaseUrl() });
  await client.connect();
});
afterAll(async () => {
  await client.end();
});

const ids = [randomUUID(), randomUUID(), randomUUID()];
const OCCURRED = Date.UTC(2026, 11, 6, 10, 0, 0, 123);
const RECEIVED = Date.UTC(2026, 11, 6, 10, 0, 1, 456);

/** Three events as the write's verdict would give them, out of order (the answer sorts by ord). */
const VERDICT = `(values
  (3, '${ids[2]}'::uuid, false, true, 1, to_timestamp(${OCCURRED} / 1000.0), to_timestamp(${RECEIVED} / 1000.0), false),
  (1, '${ids[0]}'::uuid, true, false, 1, to_timestamp(${OCCURRED} / 1000.0), to_timestamp(${RECEIVED} / 1000.0), true),
  (2, '${ids[1]}'::uuid, false, false, 2, to_timestamp(${OCCURRED} / 1000.0), to_timestamp(${RECEIVED} / 1000.0), false)
) as v(ord, id, created, conflict, leader, occurred_at, received_at, fresh)`;

const encode = async (brief: boolean) =>
  (await client.query<{ list: string }>(`select ${answerListSql('v', '$1::boolean')} as list from ${VERDICT}`, [brief])).rows[0]!.list;

test('when PostgreSQL encodes a full answer, then every event reads back in the order given with its flags, leader and times', async () => {
  expect(decodeOutcomes(await encode(false))).toEqual([
    { id: ids[0], created: true, conflict: false, leader: 0, occurredMs: OCCURRED, receivedMs: RECEIVED },
    { id: ids[1], created: false, conflict: false, leader: 1, occurredMs: OCCURRED, receivedMs: RECEIVED },
    { id: ids[2], created: false, conflict: true, leader: 0, occurredMs: OCCURRED, receivedMs: RECEIVED },
  ]);
});

test('when PostgreSQL encodes a brief answer, then it carries ids and the created flag alone', async () => {
  const list = await encode(true);
  expect(list).not.toContain(':');
  expect(decodeStored(list)).toEqual([
    { id: ids[0], created: true },
    { id: ids[1], created: false },
    { id: ids[2], created: false },
  ]);
});

test('when a refusal is raised, then its DETAIL names the conflicting events, read back from 0', async () => {
  const err = await client.query(`select usage_refuse_write(${refusalDetailSql('v')}) from ${VERDICT} where v.conflict or v.fresh`).then(
    () => null,
    (e: unknown) => e as { code?: string; detail?: string },
  );
  expect(err?.code).toBe('BL409');
  expect(decodeRefusal(err!.detail!)).toEqual([
    { index: 0, leader: 0, repeated: true },
    { index: 2, leader: 0, repeated: false },
  ]);
});
