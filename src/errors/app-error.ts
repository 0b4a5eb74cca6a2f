/**
 * The one closed list of error codes. Each maps to exactly one HTTP status here;
 * the error middleware is the only place that turns an error into a response.
 */
export const ERROR_STATUS = {
  INVALID_JSON: 400,
  INVALID_SIGNATURE: 400,
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  LICENSE_NOT_FOUND: 404,
  ACTIVATION_NOT_FOUND: 404,
  CONFLICT: 409,
  EMAIL_TAKEN: 409,
  CUSTOMER_DELETED: 409,
  TOO_MANY_KEYS: 409,
  IDEMPOTENCY_CONFLICT: 409,
  PLAN_CODE_TAKEN: 409,
  PLAN_IN_USE: 409,
  PLAN_ARCHIVED: 409,
  INSTANCE_LIMIT_REACHED: 409,
  /** Stripe is off (STRIPE_SECRET_KEY unset): a route that needs it cannot answer. */
  STRIPE_DISABLED: 409,
  /** The customer has no Stripe customer (it was created while Stripe was off, or unlinked). */
  CUSTOMER_NOT_LINKED: 409,
  /** A usage bundle (or receipt) names an instance key no activation of that fingerprint holds. */
  INSTANCE_KEY_UNKNOWN: 409,
  /** The instance was deactivated (released by the customer or an admin): its bundles are no longer taken. */
  INSTANCE_DEACTIVATED: 409,
  /** An active instance activated again with another instance key. */
  INSTANCE_KEY_MISMATCH: 409,
  /** The same bundle id with other content. */
  BUNDLE_CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  VALIDATION_FAILED: 422,
  /** A usage bundle whose signature does not verify against its instance's key (tampered, or signed by another key). */
  BUNDLE_SIGNATURE_INVALID: 422,
  /** A usage bundle of another customer than the one it is uploaded for. */
  BUNDLE_WRONG_CUSTOMER: 422,
  RATE_LIMITED: 429,
  INTERNAL_ERROR: 500,
  BAD_GATEWAY: 502,
  SERVICE_UNAVAILABLE: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface FieldProblem {
  path: string;
  message: string;
  /** The item of a list the problem is in (a batch's event). */
  index?: number;
}

export class AppError extends Error {
  readonly status: number;
  /** Response headers that belong to this answer (Retry-After, RateLimit). */
  readonly headers: Readonly<Record<string, string>>;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
    options?: { cause?: unknown; headers?: Record<string, string> },
  ) {
    super(message, options);
    this.name = 'AppError';
    this.status = ERROR_STATUS[code];
    this.headers = options?.headers ?? {};
  }
}

export class ValidationError extends AppError {
  constructor(message: string, problems: FieldProblem[]) {
    super('VALIDATION_FAILED', message, problems);
  }
}

export class NotFoundError extends AppError {
  constructor(what: string) {
    super('NOT_FOUND', `${what} not found`);
  }
}

/** Deliberately says nothing about why: no key, bad key, revoked key all look the same. */
export class UnauthorizedError extends AppError {
  /** A message only where the caller already holds what it names (its own console session ended). */
  constructor(message = 'Missing or invalid credentials') {
    super('UNAUTHORIZED', message);
  }
}

export class ServiceUnavailableError extends AppError {
  /** An expected refusal (the service shedding load), not a fault: logged at warn, without a stack. */
  readonly quiet: boolean;
  constructor(message = 'The service is temporarily unavailable; retry shortly', options?: { cause?: unknown; retryAfterSeconds?: number; quiet?: boolean }) {
    super('SERVICE_UNAVAILABLE', message, undefined, { cause: options?.cause, headers: { 'Retry-After': String(options?.retryAfterSeconds ?? 5) } });
    this.quiet = options?.quiet ?? false;
  }
}
