import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { Logger } from 'pino';
import { isDatabaseUnavailable } from '../db/db-errors';
import { AppError, ServiceUnavailableError } from '../errors/app-error';
import { errorCodes, type RouteDef } from '../http/route';
import { sendJson } from '../http/json-reply';
import { maskSecrets } from '../logger';

/** Errors raised by body-parser carry a `type`; map them to our codes. */
function fromBodyParser(err: { type?: string; status?: number }): AppError | null {
  switch (err.type) {
    case 'entity.parse.failed':
      return new AppError('INVALID_JSON', 'Request body is not valid JSON');
    case 'entity.too.large':
      return new AppError('PAYLOAD_TOO_LARGE', 'Request body is too large');
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new AppError('UNSUPPORTED_MEDIA_TYPE', 'Unsupported body encoding or charset');
    case 'request.aborted':
    case 'request.size.invalid':
    case 'stream.encoding.set':
    case 'stream.not.readable':
    case 'parameters.too.many':
      return new AppError('BAD_REQUEST', 'The request body could not be read');
    default:
      return null;
  }
}

export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  const fromParser = fromBodyParser(err as { type?: string });
  if (fromParser) return fromParser;
  // The router could not percent-decode a path parameter (/api/customers/%zz).
  if (err instanceof URIError) return new AppError('BAD_REQUEST', 'The request path is not valid percent-encoding');
  if (isDatabaseUnavailable(err)) return new ServiceUnavailableError(undefined, { cause: err });
  return new AppError('INTERNAL_ERROR', 'Internal server error', undefined, { cause: err });
}

export const notFound: RequestHandler = (req) => {
  // The path is echoed, masked: a client may have put a key in it.
  throw new AppError('NOT_FOUND', maskSecrets(`No route for ${req.method} ${req.path}`));
};

/**
 * The one place an error becomes a response: always the same JSON envelope.
 * `onUndeclared` hears of an error code the matched route does not declare (tests fail on it).
 */
export function errorHandler(logger: Logger, onUndeclared?: (route: string, code: string) => void): ErrorRequestHandler {
  return (err, req, res, next) => {
    if (res.headersSent) return next(err);
    const e = toAppError(err);
    res.locals.errorCode = e.code;
    const route = res.locals.route as RouteDef | undefined;
    // An answer to a client that already hung up reaches nobody: it is no part of the contract.
    const gone = res.destroyed || req.socket.destroyed;
    if (route && onUndeclared && !gone && !errorCodes(route).includes(e.code)) onUndeclared(`${route.method.toUpperCase()} ${route.path}`, e.code);
    // Shedding load (every key-check slot taken) is expected: the access log's warn line says it.
    const quiet = e instanceof ServiceUnavailableError && e.quiet;
    if (quiet) res.locals.quietRefusal = true;
    if (e.status >= 500 && !quiet) {
      // Unknown errors: details to the log with the request id, a generic message to the caller.
      logger.error({ err, reqId: req.id, code: e.code }, 'request failed');
    }
    for (const [name, value] of Object.entries(e.headers)) res.setHeader(name, value);
    if (e.code === 'SERVICE_UNAVAILABLE' && !res.getHeader('Retry-After')) res.setHeader('Retry-After', '5');
    sendJson(res, e.status, {
      error: {
        code: e.code,
        // Messages can quote input (a path, a value): never a customer key.
        message: maskSecrets(e.message),
        requestId: req.id,
        ...(e.details !== undefined ? { details: e.details } : {}),
      },
    });
  };
}
