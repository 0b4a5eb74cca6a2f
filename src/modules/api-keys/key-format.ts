import { hash, randomBytes } from 'node:crypto';
import { UUID_RE } from '../../lib/ids';

/** `cust_<customerId>_<secret>`: the secret is 32 random bytes, base64url (43 characters). */
const KEY_RE = /^cust_([0-9a-f-]{36})_([A-Za-z0-9_-]{43})$/;
export const KEY_LENGTH = 'cust_'.length + 36 + 1 + 43;
/** Characters of the secret kept in clear for display and candidate lookup (48 of 256 bits). */
export const START_LENGTH = 8;

export interface ParsedKey {
  customerId: string;
  secret: string;
  start: string;
}

export function generateKey(customerId: string): { key: string; secret: string; start: string } {
  const secret = randomBytes(32).toString('base64url');
  return { key: `cust_${customerId}_${secret}`, secret, start: secret.slice(0, START_LENGTH) };
}

/** Cheap, constant-shape checks only: a malformed key never reaches bcrypt or the database. */
export function parseKey(presented: string): ParsedKey | null {
  if (presented.length !== KEY_LENGTH) return null;
  const m = KEY_RE.exec(presented);
  if (!m || !UUID_RE.test(m[1]!)) return null;
  return { customerId: m[1]!, secret: m[2]!, start: m[2]!.slice(0, START_LENGTH) };
}

/** What admins see of a key: enough to recognise it, never enough to use it. */
export function displayStart(customerId: string, start: string): string {
  return `cust_${customerId}_${start}`;
}

/** Cache key for a presented key: never keep the key itself in memory longer than the request. */
export function keyFingerprint(presented: string): string {
  return hash('sha256', presented, 'base64url');
}
