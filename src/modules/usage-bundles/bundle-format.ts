import { createHash } from 'node:crypto';
import { z } from 'zod';
import { AppError, ValidationError, type FieldProblem } from '../../errors/app-error';
import { ISO_DATE_TIME, isoDateTime, uuid } from '../../http/common-schemas';
import { normalizeQuantity } from '../usage/quantity';
import { MAX_AHEAD_MS } from '../usage/usage-schemas';
import { problemsOf } from '../../http/validation';
import { fingerprint } from '../licenses/licenses-schemas';

/**
 * The usage bundle's wire format (docs/USAGE.md, Air-gapped sites): a compact JWS (RFC 7515) whose
 * protected header is {alg: EdDSA, typ: usage-bundle+jws, kid: the instance key's RFC 7638
 * thumbprint} and whose payload is the bundle's JSON. Read here without trusting it: nothing of it
 * is believed before its signature is checked (usage-bundles-service.ts), and no refusal quotes it,
 * only names its fields.
 */
export const BUNDLE_FORMAT = 'usage-bundle/1';
export const BUNDLE_TYP = 'usage-bundle+jws';
export const RECEIPT_TYP = 'usage-receipt+jwt';

const MAX_SEQ = 2 ** 31 - 1;
const B64URL = /^[A-Za-z0-9_-]+$/;
/** SHA-256 in base64url: a digest, an RFC 7638 thumbprint. */
const SHA256_B64URL = /^[A-Za-z0-9_-]{43}$/;
/** Far above any header or Ed25519 signature we write (about 120 and 86 characters). */
const MAX_HEADER_CHARS = 2048;
const MAX_SIGNATURE_CHARS = 512;

const invalid = (problems: FieldProblem[]) => new ValidationError('Invalid usage bundle', problems);
const problem = (path: string, message: string) => invalid([{ path, message }]);

/** A bundle's digest: base64url(SHA-256(its JWS text without surrounding whitespace)); `previous` names the bundle before by it. */
export const bundleDigest = (text: string): string => createHash('sha256').update(text.trim(), 'utf8').digest('base64url');

const payloadSchema = z.looseObject({
  format: z.literal(BUNDLE_FORMAT, `must be "${BUNDLE_FORMAT}"`),
  customer_id: uuid,
  fingerprint,
  bundle_id: uuid,
  seq: z.number('must be a whole number').int('must be a whole number').min(1, 'must be at least 1').max(MAX_SEQ, `must be at most ${MAX_SEQ}`),
  previous: z.string('must be a digest or null').regex(SHA256_B64URL, 'must be the digest of the bundle before (43 base64url characters) or null').nullable(),
  created_at: isoDateTime('must be an ISO 8601 date-time with a time zone').transform((s) => new Date(s)),
  events: z.array(z.unknown(), 'must be an array'),
});

export interface BundlePayload {
  customerId: string;
  fingerprint: string;
  bundleId: string;
  seq: number;
  previous: string | null;
  createdAt: Date;
  /** As the bundle holds them: each is checked on its own (checkEvents). */
  events: unknown[];
}

export interface ParsedBundle {
  /** The JWS text, without surrounding whitespace: what is verified and digested. */
  jws: string;
  digest: string;
  /** The instance key's thumbprint the header names. */
  kid: string;
  payload: BundlePayload;
}

/** A base64url part decoded as a JSON object, or null. */
function jsonObject(part: string): Record<string, unknown> | null {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    return null;
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

/**
 * Reads a bundle's text, in a fixed order, each step refusing with the fields it names: the text is a
 * compact JWS of sane size (422); its header says EdDSA, usage-bundle+jws and a thumbprint as kid
 * (422); its payload is a bundle of this format (422), with at most `maxEvents` events (413).
 */
export function parseBundle(text: string, maxEvents: number): ParsedBundle {
  const jws = text.trim();
  const parts = jws.split('.');
  if (parts.length !== 3 || !parts.every((p) => B64URL.test(p))) {
    throw problem('bundle', 'must be a compact JWS: three base64url parts joined by dots (the file as exported)');
  }
  const [headerPart, payloadPart, signature] = parts as [string, string, string];
  if (headerPart.length > MAX_HEADER_CHARS || signature.length > MAX_SIGNATURE_CHARS) {
    throw problem('bundle', 'must be a compact JWS as exported: its header or signature is far too long');
  }

  const header = jsonObject(headerPart);
  if (!header) throw problem('bundle.header', 'must be a JSON object');
  if (header.alg !== 'EdDSA') throw problem('bundle.header.alg', 'must be "EdDSA"');
  if (header.typ !== BUNDLE_TYP) throw problem('bundle.header.typ', `must be "${BUNDLE_TYP}"`);
  if (typeof header.kid !== 'string' || !SHA256_B64URL.test(header.kid)) {
    throw problem('bundle.header.kid', 'must be the RFC 7638 thumbprint of the instance key (43 base64url characters)');
  }

  const raw = jsonObject(payloadPart);
  if (!raw) throw problem('bundle.payload', 'must be a JSON object');
  // Counted before anything else of it is read: a bundle over the limit is refused whole, as a body over its size.
  if (Array.isArray(raw.events) && raw.events.length > maxEvents) {
    throw new AppError('PAYLOAD_TOO_LARGE', `A usage bundle holds at most ${maxEvents} events (USAGE_BUNDLE_MAX_EVENTS): export smaller bundles`);
  }
  const parsed = payloadSchema.safeParse(raw);
  if (!parsed.success) throw invalid(problemsOf(parsed.error).map((p) => ({ ...p, path: `bundle.payload.${p.path}` })));
  const p = parsed.data;
  return {
    jws,
    digest: bundleDigest(jws),
    kid: header.kid,
    payload: {
      customerId: p.customer_id,
      fingerprint: p.fingerprint,
      bundleId: p.bundle_id,
      seq: p.seq,
      previous: p.previous,
      createdAt: p.created_at,
      events: p.events,
    },
  };
}

/** An event of a bundle that passed its checks: ready for the usage write. */
export interface BundleEvent {
  /** Its place in the bundle. */
  index: number;
  metric: string;
  /** Normalised decimal string. */
  quantity: string;
  occurredAt: Date;
  idempotencyKey: string;
}

/** An event refused: named by its key in the receipt, with why. */
export interface RejectedEvent {
  index: number;
  idempotencyKey: string;
  reason: string;
}

export interface EventRules {
  metrics: readonly string[];
  /** The bundle's created_at: events are at most 5 minutes after it. */
  createdAt: Date;
  /** The customer's creation: no event before it. */
  customerCreatedAt: Date;
  nowMs: number;
}

const PRINTABLE = /^[\x20-\x7e]{1,255}$/;
/** Structural problems listed in one refusal, at most. */
const MAX_LISTED = 20;

/**
 * Each event, by POST /api/usage's rules with a bundle's own: occurred_at is required, at most 5
 * minutes after the bundle's created_at and after now, never before the customer was created, and
 * never refused for its age (old events are late usage, billed by a true-up). A bad event is
 * rejected with its reason (the receipt lists it; the client dead-letters it); the others are
 * applied. Only what the receipt could not name refuses the whole bundle (422): an event that is not
 * an object, or whose idempotency_key is not 1-255 printable ASCII characters. Members other than
 * the four are ignored.
 */
export function checkEvents(events: readonly unknown[], rules: EventRules): { valid: BundleEvent[]; rejected: RejectedEvent[] } {
  const valid: BundleEvent[] = [];
  const rejected: RejectedEvent[] = [];
  const problems: FieldProblem[] = [];
  const latest = Math.min(rules.createdAt.getTime() + MAX_AHEAD_MS, rules.nowMs + MAX_AHEAD_MS);
  const reject = (index: number, idempotencyKey: string, reason: string) => void rejected.push({ index, idempotencyKey, reason });

  events.forEach((raw, index) => {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      problems.push({ path: `bundle.payload.events.${index}`, message: 'must be an object', index });
      return;
    }
    const e = raw as Record<string, unknown>;
    const key = e.idempotency_key;
    if (typeof key !== 'string' || !PRINTABLE.test(key)) {
      problems.push({ path: `bundle.payload.events.${index}.idempotency_key`, message: 'must be 1-255 printable ASCII characters', index });
      return;
    }
    const { metric, quantity, occurred_at: at } = e;
    if (typeof metric !== 'string' || !rules.metrics.includes(metric)) return reject(index, key, `metric: must be one of: ${rules.metrics.join(', ')}`);
    const amount = normalizeQuantity(quantity);
    if (!amount.ok) return reject(index, key, `quantity: ${amount.message}`);
    if (at === undefined || at === null) return reject(index, key, 'occurred_at: required in a bundle');
    if (typeof at !== 'string' || !ISO_DATE_TIME.test(at)) return reject(index, key, 'occurred_at: must be an ISO 8601 date-time with a time zone');
    const occurredAt = new Date(at);
    const ms = occurredAt.getTime();
    if (Number.isNaN(ms)) return reject(index, key, 'occurred_at: must be an ISO 8601 date-time with a time zone');
    if (ms > latest) return reject(index, key, 'occurred_at: more than 5 minutes after the bundle was created, or in the future');
    if (ms < rules.customerCreatedAt.getTime()) return reject(index, key, 'occurred_at: before the customer was created');
    valid.push({ index, metric, quantity: amount.value, occurredAt, idempotencyKey: key });
  });

  if (problems.length) throw invalid(problems.slice(0, MAX_LISTED));
  return { valid, rejected };
}
