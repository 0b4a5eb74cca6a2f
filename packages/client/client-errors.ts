import { BillingApiError } from './api-error';

/** The on-disk queue holds as many events (or bytes) as it may: nothing of the call was queued. */
export class QueueFullError extends Error {
  override readonly name = 'QueueFullError';
  constructor(
    message: string,
    /** Events and bytes waiting to be sent, and the limits. */
    readonly queued: { events: number; bytes: number; maxEvents: number; maxBytes: number },
  ) {
    super(message);
  }
}

/** Another live process (or another client in this one) holds the queue directory. */
export class QueueLockedError extends Error {
  override readonly name = 'QueueLockedError';
  constructor(
    message: string,
    readonly lockFile: string,
    readonly pid: number | null,
  ) {
    super(message);
  }
}

/** 409 INSTANCE_LIMIT_REACHED: every seat of the plan's `limits.instances` is taken. */
export class InstanceLimitReachedError extends BillingApiError {
  override readonly name: string = 'InstanceLimitReachedError';
  constructor(from: BillingApiError) {
    super(from.status, from.code, from.message, from.requestId, from.retryAfter, from.details);
  }

  /** When the next seat frees at the latest (the last license bound to a holder expires), as the service said. */
  get seatFreesAt(): Date | null {
    const at = (this.details as { seat_frees_at?: unknown } | undefined)?.seat_frees_at;
    return typeof at === 'string' && !Number.isNaN(Date.parse(at)) ? new Date(at) : null;
  }
}

/**
 * Events given to reportUsage without a queue that the service did not acknowledge. `pending` holds
 * them with the idempotency keys they were sent with: report exactly those again and nothing can
 * count twice. `cause` is the BillingApiError or BillingNetworkError of the last attempt.
 */
export class UsageReportError<E = unknown, R = unknown> extends Error {
  override readonly name = 'UsageReportError';
  constructor(
    message: string,
    /** Not acknowledged (maybe stored, maybe not): resend as they are. */
    readonly pending: E[],
    /** Acknowledged before the failure (earlier batches of the call). */
    readonly receipts: R[],
    options: { cause: unknown },
  ) {
    super(message, options);
  }
}

/** Why a folder or file of the SDK was refused. */
export type UnsafePathReason = 'symlink' | 'not-a-directory' | 'not-a-file' | 'owner' | 'mode' | 'hard-link' | 'parent';

/**
 * A queue or license folder (or a file in it) that another local user could tamper with: not owned
 * by this process's user, writable by group or others, inside a folder anyone may rename things in,
 * or a file that is a symbolic link or has other names (hard links). Nothing was read or written.
 */
export class UnsafePathError extends Error {
  override readonly name = 'UnsafePathError';
  constructor(
    message: string,
    readonly path: string,
    readonly reason: UnsafePathReason,
  ) {
    super(message);
  }
}

/**
 * The disk holding the queue is full (ENOSPC, or the user's quota: EDQUOT): nothing of the call was
 * queued. Sending and acknowledging go on (acknowledgements need no new space), so the queue drains.
 */
export class QueueDiskFullError extends Error {
  override readonly name = 'QueueDiskFullError';
  constructor(
    message: string,
    readonly dir: string,
    options: { cause: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The service's address answered with a redirect the SDK does not follow: to another origin (it
 * would carry the API key and the events there), or one that would change a write into a read.
 * Nothing was sent to the redirect's target.
 */
export class RedirectRefusedError extends Error {
  override readonly name = 'RedirectRefusedError';
  readonly retryable = false;
  constructor(
    message: string,
    readonly status: number,
    /** The origin the request went to and the one the redirect names (origins only: a Location may carry secrets). */
    readonly from: string,
    readonly to: string,
  ) {
    super(message);
  }
}

/**
 * A call that needs the billing service, on a client made with `offline: true` (an air-gapped
 * instance: no baseUrl, no API key). Nothing was sent. Offline, usage leaves in bundles
 * (exportUsage) and comes back acknowledged by receipts (importReceipt).
 */
export class OfflineModeError extends Error {
  override readonly name = 'OfflineModeError';
  readonly retryable = false;
  constructor(readonly method: string) {
    super(
      `${method} calls the billing service, but this client is offline only (offline: true): nothing was sent. ` +
        'An air-gapped instance exports its usage with exportUsage and imports receipts with importReceipt; give baseUrl and apiKey (without offline) to call the service.',
    );
  }
}
