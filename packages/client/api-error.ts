/**
 * What the service answered when it did not succeed: its error envelope, with the status and, for
 * 429 and 503, when to try again. Never carries a credential.
 */
export class BillingApiError extends Error {
  override readonly name: string = 'BillingApiError';
  constructor(
    /** HTTP status. */
    readonly status: number,
    /** The service's error code (UNAUTHORIZED, RATE_LIMITED, IDEMPOTENCY_CONFLICT, ...), or HTTP_<status> when the body was not the envelope. */
    readonly code: string,
    message: string,
    /** The service's request id (X-Request-Id): quote it when asking about a failure. */
    readonly requestId: string | null,
    /** Seconds to wait before retrying (from Retry-After), when the service said. */
    readonly retryAfter: number | null,
    /** Field problems of a 422, as the service listed them. */
    readonly details?: unknown,
  ) {
    super(message);
  }

  /** Worth retrying with the same request: rate limited, or the service (or something before it) failed. */
  get retryable(): boolean {
    return this.status === 429 || this.status === 408 || this.status >= 500;
  }
}

/** The service could not be reached, or did not answer in time: retry with the same request. */
export class BillingNetworkError extends Error {
  override readonly name = 'BillingNetworkError';
  readonly retryable = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
