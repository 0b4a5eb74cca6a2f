/**
 * The usage write's answer (WRITE_SQL in usage-repository.ts): how PostgreSQL encodes it and how
 * it is read back, side by side so the two cannot drift apart. tests/unit/write-answer.test.ts
 * runs the encoding in PostgreSQL and reads it back.
 *
 * One row and one column whatever the number of events, so a 100-event batch is one value to read
 * and one sort, not a hundred rows (or a sort per column): per event in the order given, comma-
 * separated, `<id><created 1/0><conflict 1/0>` and, but for a brief answer (an all-or-nothing
 * write, whose caller reads ids and flags alone), `:<leader>:<occurred_ms>` with the leader counted
 * from 1. Why one value: docs/decisions/named-statement.md. The receipt is not sent: it is the time in
 * the id (a UUIDv7 made at receipt), read here (receivedMsOf) rather than decoded by PostgreSQL for
 * every row.
 *
 * A refused all-or-nothing write carries its conflicting events in the error's DETAIL as a JSON
 * array of {ord, leader, fresh} (counted from 1; fresh: the key was stored by the refused write itself).
 */

/** What the write says of each event given, in the order given. */
export interface WriteOutcome {
  /** The stored event's id: new, or the one stored earlier under the same key. */
  id: string;
  /** Stored by this write (false: the key was stored before, or earlier in the same write). */
  created: boolean;
  /** The key is stored with a different request fingerprint. */
  conflict: boolean;
  /** Index of the first event of this write with the same customer and key. */
  leader: number;
  /** The stored event's times, in ms since the epoch (a batch answers without them: no Date made for it). */
  occurredMs: number;
  receivedMs: number;
}

/** An event of an all-or-nothing write: its id, and whether this write stored it. */
export interface StoredEvent {
  id: string;
  created: boolean;
}

/** A conflicting event of a refused all-or-nothing write (indexes from 0). */
export interface RefusedEvent {
  index: number;
  leader: number;
  /** The key was stored by the refused write itself: the request repeats a key with another body. */
  repeated: boolean;
}

/**
 * The SQL aggregate that encodes the answer over `rows` (a relation with ord, id, created,
 * conflict, leader, occurred_at), brief when `brief` (a boolean SQL expression) is true.
 */
export function answerListSql(rows: string, brief: string): string {
  return `string_agg(${rows}.id::text || case when ${rows}.created then '1' else '0' end || case when ${rows}.conflict then '1' else '0' end
         || case when not ${brief} then ':' || ${rows}.leader || ':' || floor(extract(epoch from ${rows}.occurred_at) * 1000)::bigint else '' end,
         ',' order by ${rows}.ord)`;
}

/** The SQL that builds a refusal's DETAIL from the conflicting rows (ord, leader, fresh). */
export function refusalDetailSql(rows: string): string {
  return `json_agg(json_build_object('ord', ${rows}.ord, 'leader', ${rows}.leader, 'fresh', ${rows}.fresh) order by ${rows}.ord)::text`;
}

const ID_LENGTH = 36;

/**
 * The receipt of an event: the first 48 bits of its UUIDv7 id, Unix milliseconds (the same as
 * usage_uuid_time() in SQL). An event's id is always made at its receipt (usage_uuidv7()).
 */
export function receivedMsOf(id: string): number {
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}
const ONE = '1'.charCodeAt(0);
const flag = (item: string, at: number) => item.charCodeAt(at) === ONE;

/** A full answer: every event's outcome. */
export function decodeOutcomes(list: string): WriteOutcome[] {
  return list.split(',').map((item) => {
    const [, leader, occurred] = item.split(':');
    const id = item.slice(0, ID_LENGTH);
    return {
      id,
      created: flag(item, ID_LENGTH),
      conflict: flag(item, ID_LENGTH + 1),
      leader: Number(leader) - 1,
      occurredMs: Number(occurred),
      receivedMs: receivedMsOf(id),
    };
  });
}

/** A brief answer: each event's id and whether this write stored it. */
export function decodeStored(list: string): StoredEvent[] {
  return list.split(',').map((item) => ({ id: item.slice(0, ID_LENGTH), created: flag(item, ID_LENGTH) }));
}

/** A refusal's DETAIL: the conflicting events, indexes from 0. */
export function decodeRefusal(detail: string): RefusedEvent[] {
  const named = JSON.parse(detail) as { ord: number; leader: number; fresh: boolean }[];
  return named.map((n) => ({ index: n.ord - 1, leader: n.leader - 1, repeated: n.fresh }));
}
