import { compactVerify, errors as joseErrors, type KeyLike } from 'jose';
import type { BundleReceiptClaims } from './client-types';
import type { JwksSource } from './jwks-source';
import { isLicenseError } from './license-errors';
import { clockWoundBack, type LicenseStore } from './license-store';
import { ReceiptError, type ReceiptErrorCode } from './receipt-errors';

export const RECEIPT_TYP = 'usage-receipt+jwt';
/** A receipt lists every refused event; 100,000 of them fit. */
export const MAX_RECEIPT_LENGTH = 32 * 1024 * 1024;

export interface VerifyReceiptOptions {
  /** The same trust anchor as licenses: the keys built into the software, or of a key set a built-in root signed. */
  keys: JwksSource;
  /** The license mark: read only (a receipt never moves it), for the clock check. */
  store: LicenseStore;
  issuer?: string;
  customerId: string;
  fingerprint: string;
  clockToleranceSeconds?: number;
  now?: number;
}

const refuse = (code: ReceiptErrorCode, message: string, cause?: unknown): never => {
  throw new ReceiptError(code, message, cause === undefined ? undefined : { cause });
};

/** The trust anchor's and the mark's own refusals, under the receipt's codes. */
function fromLicenseError(err: unknown): never {
  if (isLicenseError(err)) {
    const code: ReceiptErrorCode =
      err.code === 'NO_TRUST_ANCHOR' || err.code === 'JWKS_UNAVAILABLE' || err.code === 'UNTRUSTED_KEY_SET' || err.code === 'STORE_CORRUPT'
        ? err.code
        : 'UNKNOWN_KEY';
    refuse(code, err.message, err);
  }
  throw err;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isText = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function decodeHeader(token: string): Obj {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((p) => /^[A-Za-z0-9_-]*$/.test(p)) || !parts[0] || !parts[1]) refuse('MALFORMED', 'The receipt is not a compact JWS.');
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8'));
  } catch {
    refuse('MALFORMED', 'The receipt header is not JSON.');
  }
  if (!isObj(header)) refuse('MALFORMED', 'The receipt header is not a JSON object.');
  return header as Obj;
}

/** The claims a receipt must have (the service's UsageBundleReceipt), each checked. */
function parseClaims(v: unknown): BundleReceiptClaims {
  const bad = (field: string): never => refuse('MALFORMED', `The receipt's claims are not a usage receipt's (${field}).`);
  if (!isObj(v)) bad('not an object');
  const c = v as Obj;
  for (const f of ['iss', 'sub', 'jti', 'bundle_id', 'customer_id', 'fingerprint', 'bundle_digest'] as const) if (!isText(c[f])) bad(f);
  if (!isCount(c.iat)) bad('iat');
  if (!isCount(c.seq) || c.seq < 1) bad('seq');
  const rejected = c.rejected ?? [];
  if (!Array.isArray(rejected) || !rejected.every((r) => isObj(r) && isText(r.idempotency_key) && typeof r.reason === 'string')) bad('rejected');
  const missing = c.missing_seq ?? [];
  if (!Array.isArray(missing) || !missing.every((s) => isCount(s))) bad('missing_seq');
  for (const f of ['events', 'applied', 'duplicates', 'late'] as const) if (!isCount(c[f])) bad(f);
  if (typeof c.previous_mismatch !== 'boolean') bad('previous_mismatch');
  return {
    ...(c as unknown as BundleReceiptClaims),
    rejected: (rejected as Obj[]).map((r) => ({ idempotency_key: r.idempotency_key as string, reason: r.reason as string })),
    missing_seq: missing as number[],
    previous_mismatch: c.previous_mismatch === true,
  };
}

async function verifySignature(token: string, keys: KeyLike[]): Promise<Uint8Array> {
  for (const key of keys) {
    try {
      return (await compactVerify(token, key, { algorithms: ['EdDSA'] })).payload;
    } catch (err) {
      if (err instanceof joseErrors.JWSSignatureVerificationFailed) continue;
      if (err instanceof joseErrors.JOSEAlgNotAllowed) refuse('ALGORITHM_NOT_ALLOWED', 'The receipt is not signed with EdDSA.');
      refuse('MALFORMED', 'The receipt is not a well-formed JWS.');
    }
  }
  return refuse('BAD_SIGNATURE', 'The receipt signature does not verify.');
}

/**
 * A usage bundle's receipt, verified offline in one fixed order: shape, algorithm, typ, key (the
 * license trust anchor), signature, claims, time (this clock against the license mark, then iat not
 * ahead of it), issuer, customer (sub and customer_id), instance (fingerprint). Which bundle it is
 * for, and whether it was imported already, the caller checks against its own records. Nothing is
 * written: the mark is only read.
 */
export async function verifyReceipt(token: string, o: VerifyReceiptOptions): Promise<BundleReceiptClaims> {
  const tolerance = o.clockToleranceSeconds ?? 60;
  if (token.length === 0 || token.length > MAX_RECEIPT_LENGTH) refuse('MALFORMED', 'The receipt is not a compact JWS.');
  const header = decodeHeader(token);
  if (header.alg !== 'EdDSA') refuse('ALGORITHM_NOT_ALLOWED', 'The receipt is not signed with EdDSA.');
  if (typeof header.typ !== 'string' || header.typ.toLowerCase().replace(/^application\//, '') !== RECEIPT_TYP) {
    refuse('MALFORMED', `The token is not a usage receipt (typ is not ${RECEIPT_TYP}).`);
  }
  if (header.crit !== undefined || header.b64 !== undefined) refuse('MALFORMED', 'The receipt header has parameters a receipt never has.');
  if (!isText(header.kid)) refuse('MALFORMED', 'The receipt header names no key (kid).');

  const keys = await o.keys.keysFor(header.kid as string).catch(fromLicenseError);
  if (keys.length === 0) refuse('UNKNOWN_KEY', 'The receipt is signed with a key this software does not trust.');
  const payload = await verifySignature(token, keys);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch {
    refuse('MALFORMED', 'The receipt payload is not JSON.');
  }
  const claims = parseClaims(json);

  const mark = await o.store.read().catch(fromLicenseError);
  const now = (o.now ?? Date.now()) / 1000;
  const woundBack = clockWoundBack(mark, now, tolerance);
  if (woundBack) refuse('CLOCK_ROLLED_BACK', woundBack);
  if (claims.iat > now + tolerance) refuse('NOT_YET_VALID', 'The receipt is issued ahead of this clock (or this clock is behind).');

  if (o.issuer !== undefined && claims.iss !== o.issuer) refuse('WRONG_ISSUER', 'The receipt comes from another issuer.');
  if (claims.sub !== o.customerId || claims.customer_id !== o.customerId) refuse('WRONG_CUSTOMER', 'The receipt is for another customer.');
  if (claims.fingerprint !== o.fingerprint) refuse('WRONG_INSTANCE', 'The receipt is for another instance.');
  return claims;
}
