/**
 * Every way a license can be refused, as one closed list. Callers switch on `code`; messages are for
 * people and never contain the token (nor anything read from an unverified token).
 */
export const LICENSE_ERROR_CODES = [
  'MALFORMED',
  'ALGORITHM_NOT_ALLOWED',
  'UNKNOWN_KEY',
  'BAD_SIGNATURE',
  'EXPIRED',
  'NOT_YET_VALID',
  'WRONG_ISSUER',
  'WRONG_CUSTOMER',
  'WRONG_INSTANCE',
  'REPLAYED',
  'CLOCK_ROLLED_BACK',
  'STORE_CORRUPT',
  'JWKS_UNAVAILABLE',
  'NO_TRUST_ANCHOR',
  'UNTRUSTED_KEY_SET',
] as const;

export type LicenseErrorCode = (typeof LICENSE_ERROR_CODES)[number];

export class LicenseError<C extends LicenseErrorCode = LicenseErrorCode> extends Error {
  constructor(
    readonly code: C,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'LicenseError';
  }

  /**
   * True when the same token may verify later without anything changing on this instance's side:
   * the keys could not be fetched, or the license is not valid yet. Every other refusal is final
   * for this token.
   */
  get transient(): boolean {
    return this.code === 'JWKS_UNAVAILABLE' || this.code === 'NOT_YET_VALID';
  }
}

/** `isLicenseError(e)`, or `isLicenseError(e, 'REPLAYED')` to narrow to one code. */
export function isLicenseError<C extends LicenseErrorCode>(err: unknown, code?: C): err is LicenseError<C> {
  return err instanceof LicenseError && (code === undefined || err.code === code);
}
