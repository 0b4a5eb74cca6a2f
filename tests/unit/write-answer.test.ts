/**
 * The usage write's answer (src/modules/usage/write-answer.ts): encoded by PostgreSQL, read back here.
 */
import pg from 'pg';
import { answerListSql, decodeOutcomes, decodeRefusal, decodeStored, receivedMsOf, refusalDetailSql } from '../../src/modules/usage/write-answer';
import { testDatabaseUrl } from '../helpers/test-app';

let client: pg.Client;
beforeAll(async () => {
  client = new pg.Client({ connectionString: testDatabaseUrl() });
  await client.connect();
});
afterAll(async () => {
  await client.end();
});

const OCCURRED = Date.UTC(2026, 11, 6, 10, 0, 0, 123);
const RECEIVED = Date.UTC(2026, 11, 6, 10, 0, 1, 456);
/** Ids as usage_uuidv7() makes them at RECEIVED (its time in the first 48 bits). */
let ids: string[] = [];
beforeAll(async () => {
  ids = (
    await client.query<{ id: string }>(
      `select encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing substring(int8send($1::bigint) from 3) from 1 for 6), 52, 1), 53, 1), 'hex')::uuid::text as id
         from generate_series(1, 3)`,
      [RECEIVED],
    )
  ).rows.map((r) => r.id);
});

/** Three events as the write's verdict would give them, out of order (the answer sorts by ord). */
const verdict = () => `(values
  (3, '${ids[2]}'::uuid, false, true, 1, to_timestamp(${OCCURRED} / 1000.0), false),
  (1, '${ids[0]}'::uuid, true, false, 1, to_timestamp(${OCCURRED} / 1000.0), true),
  (2, '${ids[1]}'::uuid, false, false, 2, to_timestamp(${OCCURRED} / 1000.0), false)
) as v(ord, id, created, conflict, leader, occurred_at, fresh)`;

const encode = async (brief: boolean) =>
  (await client.query<{ list: string }>(`select ${answerListSql('v', '$1::boolean')} as list from ${verdict()}`, [brief])).rows[0]!.list;

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
  const err = await client.query(`select usage_refuse_write(${refusalDetailSql('v')}) from ${verdict()} where v.conflict or v.fresh`).then(
    () => null,
    (e: unknown) => e as { code?: string; detail?: string },
  );
  expect(err?.code).toBe('BL409');
  expect(decodeRefusal(err!.detail!)).toEqual([
    { index: 0, leader: 0, repeated: true },
    { index: 2, leader: 0, repeated: false },
  ]);
});

test('when an id is made by usage_uuidv7(), then receivedMsOf reads the same time as usage_uuid_time()', async () => {
  const { rows } = await client.query<{ id: string; ms: string }>(
    `select id::text, floor(extract(epoch from usage_uuid_time(id)) * 1000)::bigint::text as ms from (select usage_uuidv7() as id from generate_series(1, 5)) s`,
  );
  for (const r of rows) expect(receivedMsOf(r.id)).toBe(Number(r.ms));
  expect(Math.abs(receivedMsOf(rows[0]!.id) - Date.now())).toBeLessThan(60_000);
});
