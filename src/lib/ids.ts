import { randomUUID } from 'node:crypto';

/**
 * UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then random bits. Time-ordered,
 * so "newest first" lists page by id alone, and inserts stay at the right edge of the index.
 * The random part comes from randomUUID(), which draws on a buffered entropy pool: far cheaper
 * per id than randomBytes(16) on the usage hot path.
 */
export function uuidv7(now = Date.now()): string {
  const r = randomUUID(); // xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx, y in 8..b: the variant is already right
  const ts = now.toString(16).padStart(12, '0');
  return `${ts.slice(0, 8)}-${ts.slice(8, 12)}-7${r.slice(15, 18)}-${r.slice(19)}`;
}

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** audit_log ids are bigserial: 1 up to PostgreSQL's bigint maximum. */
const MAX_BIGINT = 9223372036854775807n;
export const isBigserialId = (s: string): boolean => /^[1-9]\d{0,18}$/.test(s) && BigInt(s) <= MAX_BIGINT;

/** The shape of every request id an audit row may hold: ours (UUIDs), or a client's sane one. */
export const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;
