import { randomUUID } from 'node:crypto';
import type { RequestHandler } from 'express';
import { REQUEST_ID_RE } from '../lib/ids';

declare module 'http' {
  interface IncomingMessage {
    /** The service's own id for this request (a UUID). */
    id: string;
    /** The client's own X-Request-Id, when it was sane: kept for correlation, never used as ours. */
    clientRequestId?: string;
  }
}

/**
 * Every request gets the service's own id (a UUID): in X-Request-Id, error envelopes, logs and audit
 * rows. A client's X-Request-Id is never taken as ours (a caller could reuse another request's id
 * and blur the audit trail); when it is short and plain it is kept beside ours, as clientRequestId.
 */
export function requestId(): RequestHandler {
  return (req, res, next) => {
    const incoming = req.get('x-request-id');
    if (incoming !== undefined && REQUEST_ID_RE.test(incoming)) req.clientRequestId = incoming;
    req.id = randomUUID();
    // express works req.ip out from X-Forwarded-For and TRUST_PROXY on every read, and the limits,
    // the authentication and the access log each read it: work it out once.
    Object.defineProperty(req, 'ip', { value: req.ip, enumerable: true });
    res.setHeader('X-Request-Id', req.id);
    next();
  };
}
