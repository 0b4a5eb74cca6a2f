import type { RequestHandler } from 'express';
import type { Logger } from 'pino';
import type { Histogram } from 'prom-client';

/**
 * The URL as logged: the path, and the query string's parameter names only. Values may be
 * secrets a client put in the wrong place (?api_key=cust_...), tokens, or personal data.
 */
export function loggedUrl(originalUrl: string): string {
  const q = originalUrl.indexOf('?');
  if (q < 0) return originalUrl;
  const names = originalUrl
    .slice(q + 1)
    .split('&')
    .filter((pair) => pair !== '')
    .map((pair) => {
      const name = pair.split('=', 1)[0]!;
      try {
        return encodeURIComponent(decodeURIComponent(name.replace(/\+/g, ' ')));
      } catch {
        return encodeURIComponent(name);
      }
    });
  return `${originalUrl.slice(0, q)}?${names.join('&')}`;
}

/**
 * One access-log line and one request-duration observation per request, from a single 'close'
 * listener (it comes whether the answer was sent or the client hung up first). Built by hand rather
 * than with pino-http: no child logger and no serialisers per request, only the fields below (no
 * headers, no bodies, no credentials: nothing the redaction paths name, see below; query strings by
 * parameter name only; a customer key in the path is masked by the logger's line hook).
 * A client that hung up before the whole answer was sent is logged as 499 (nginx's code), never as
 * the status its answer would have had.
 */
export function requestObserver(logger: Logger, duration: Histogram<'method' | 'route' | 'status'>): RequestHandler {
  // The line's fields are plain values none of the redaction paths can name (they name headers,
  // bodies and nested secrets): a logger without redaction writes the very same line, without
  // pino cloning the object and walking every path first (about 20 us a line here).
  const access = logger.child({}, { redact: [] });
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    res.once('close', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const aborted = !res.writableFinished;
      const status = aborted ? 499 : res.statusCode;
      // The route template, not the path: ids stay out of the labels.
      duration.observe({ method: req.method, route: (req.route as { path?: string } | undefined)?.path ?? 'unmatched', status: String(status) }, seconds);
      const level = status >= 500 && !res.locals.quietRefusal ? 'error' : status >= 400 ? 'warn' : 'info';
      if (!access.isLevelEnabled(level)) return;
      const errorCode = res.locals.errorCode as string | undefined;
      access[level](
        {
          reqId: req.id,
          method: req.method,
          url: loggedUrl(req.originalUrl),
          status,
          ms: Math.round(seconds * 1000),
          ip: req.ip,
          ...(aborted ? { aborted: true } : {}),
          ...(req.clientRequestId ? { clientRequestId: req.clientRequestId } : {}),
          ...(errorCode ? { errorCode } : {}),
        },
        aborted ? 'request aborted' : status >= 500 ? 'request failed' : 'request completed',
      );
    });
    next();
  };
}
