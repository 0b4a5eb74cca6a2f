/**
 * Every way a usage bundle's receipt can be refused, as one closed list. A refused receipt changes
 * nothing on the instance (the queue, the dead letters, the license and the bundles' records are as
 * they were). Messages are for people and never contain the receipt.
 */
export const RECEIPT_ERROR_CODES = [
  /** Not a compact JWS, not a receipt (typ), or its claims are not a receipt's. */
  'MALFORMED',
  'ALGORITHM_NOT_ALLOWED',
  /** No trusted key (built in, or of a root-signed key set) is listed under its kid. */
  'UNKNOWN_KEY',
  /** Its signature does not verify: tampered, or signed by another key. */
  'BAD_SIGNATURE',
  /** Issued ahead of this clock (beyond the tolerance). */
  'NOT_YET_VALID',
  /** This clock is before the newest license accepted (or a license seen expire): it was wound back. */
  'CLOCK_ROLLED_BACK',
  'WRONG_ISSUER',
  /** For another customer. */
  'WRONG_CUSTOMER',
  /** For another instance (fingerprint). */
  'WRONG_INSTANCE',
  /** For a bundle this instance never exported (or exported under another bundle id). */
  'UNKNOWN_BUNDLE',
  /** For a bundle with this id but another content (bundle_digest or seq differ from what was exported). */
  'DIGEST_MISMATCH',
  /** Already imported. */
  'REPLAYED',
  /** The trust anchor or the license mark could not be used (see `cause`: a LicenseError). */
  'NO_TRUST_ANCHOR',
  'JWKS_UNAVAILABLE',
  'UNTRUSTED_KEY_SET',
  'STORE_CORRUPT',
] as const;

export type ReceiptErrorCode = (typeof RECEIPT_ERROR_CODES)[number];

export class ReceiptError<C extends ReceiptErrorCode = ReceiptErrorCode> extends Error {
  override readonly name = 'ReceiptError';
  constructor(
    readonly code: C,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** `isReceiptError(e)`, or `isReceiptError(e, 'REPLAYED')` to narrow to one code. */
export function isReceiptError<C extends ReceiptErrorCode>(err: unknown, code?: C): err is ReceiptError<C> {
  return err instanceof ReceiptError && (code === undefined || err.code === code);
}
