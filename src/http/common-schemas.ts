import { z } from 'zod';
import { REQUEST_ID_RE, UUID_RE } from '../lib/ids';

export const uuid = z.string().regex(UUID_RE, 'must be a UUID');

/**
 * Filters on ids: a value that cannot be one of our ids is refused (422) before any query, so
 * nothing a caller types reaches PostgreSQL unchecked (a NUL in a text parameter is a 500 there).
 */
const UUID = UUID_RE.source.slice(1, -1);
const STRIPE_ID = '[a-z]{1,10}_[A-Za-z0-9_]{1,250}';
/** What audit rows name as a target: our rows by UUID, Stripe events by their id. */
export const targetId = z.string().regex(new RegExp(`^(?:${UUID}|${STRIPE_ID})$`), 'must be a UUID or a Stripe id');
/** Who acted: a customer (UUID), an admin token's fingerprint, or a Stripe event. */
export const actorId = z
  .string()
  .regex(new RegExp(`^(?:${UUID}|admin:[0-9a-f]{12}|${STRIPE_ID})$`), 'must be a customer id, admin:<12 hex> or a Stripe event id');
export const requestIdFilter = z.string().regex(REQUEST_ID_RE, '1-128 characters of A-Z a-z 0-9 . _ : -');

/** A search term typed by a person: bounded, no control characters. */
export const searchText = (max: number) =>
  z
    .string()
    .trim()
    .max(max, `must be at most ${max} characters`)
    .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters');

/**
 * Free text a person typed (names shown in the Dashboard and sent to Stripe): trimmed, bounded, no
 * control characters and no invisible format characters (Unicode Cf: U+202E right-to-left override,
 * U+200B zero-width space, U+FEFF, ...), which make one name look like another. Checked before the
 * trim, which would silently drop a U+FEFF at either end; unpaired surrogates (Cs) cannot be stored as
 * UTF-8 and are refused too.
 */
export const text = (max: number) =>
  z
    .string()
    .regex(/^[^\p{Cc}\p{Cf}\p{Cs}]*$/u, 'must not contain control or invisible formatting characters')
    .trim()
    .min(1, 'must not be empty')
    .max(max, `must be at most ${max} characters`);

/** Names that become object keys in our code or a client's, and there reach a prototype. */
const RESERVED_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
export const notReserved = (name: string) => !RESERVED_KEYS.has(name);

/**
 * A record that refuses reserved keys with a 422. JSON.parse keeps "__proto__" as an own key, but
 * zod's record skips it without a word (so a limit would vanish silently): look at the raw keys
 * before the record does.
 */
export const safeRecord = <T extends z.ZodType>(record: T) =>
  z.preprocess((value, ctx) => {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      for (const key of Object.keys(value)) {
        if (!notReserved(key)) ctx.addIssue({ code: 'custom', message: `"${key}" is a reserved name`, path: [key], input: value });
      }
    }
    return value;
  }, record);

export const email = z.string().trim().max(254, 'must be at most 254 characters').pipe(z.email('must be a valid email address'));

export const idParams = z.object({ id: uuid });

/**
 * The one ISO 8601 date-time rule: with a time zone (Z or an offset), any number of fractional
 * digits. The schema for the API and the pattern for checks written by hand (the usage body's) are
 * zod's one public rule (`z.iso.datetime` and `z.regexes.datetime` with the same options), so the two
 * cannot read a date differently.
 */
export const isoDateTime = (message?: string) => z.iso.datetime({ offset: true, ...(message ? { message } : {}) });
export const ISO_DATE_TIME: RegExp = z.regexes.datetime({ offset: true });

export const isoDate = isoDateTime().transform((s) => new Date(s));

export function iso(d: Date): string;
export function iso(d: Date | null): string | null;
export function iso(d: Date | null): string | null {
  return d ? d.toISOString() : null;
}
