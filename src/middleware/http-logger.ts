import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { pinoHttp } from 'pino-http';

type Req = IncomingMessage & { originalUrl?: string; ip?: string; clientRequestId?: string };
type Res = ServerResponse & { locals?: { errorCode?: string } };

/** The client hung up before the whole answer was sent (nginx's 499): nothing it was told was received. */
const aborted = (res: Res) => !res.writableFinished;

/** The fields of one access-log line (reqId is bound by pino-http): no headers, no bodies, no credentials. */
function line(req: Req, res: Res, responseTime: number) {
  return {
    method: req.method,
    url: req.originalUrl ?? req.url,
    status: aborted(res) ? 499 : res.statusCode,
    ...(aborted(res) ? { aborted: true } : {}),
    ms: responseTime,
    ip: req.ip,
    ...(req.clientRequestId ? { clientRequestId: req.clientRequestId } : {}),
    ...(res.locals?.errorCode ? { errorCode: res.locals.errorCode } : {}),
  };
}

/**
 * One line per request when it completes. Configured to stay off the hot path: no per-request
 * child logger carrying the whole request, no header serialisation. Redaction in the logger
 * still covers any header object that is ever logged.
 */
export function httpLogger(logger: Logger) {
  return pinoHttp({
    logger,
    genReqId: (req) => req.id,
    quietReqLogger: true,
    quietResLogger: true,
    customLogLevel: (_req, res, err) => (err || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 || aborted(res as Res) ? 'warn' : 'info'),
    customSuccessMessage: (_req, res) => (aborted(res as Res) ? 'request aborted' : 'request completed'),
    customErrorMessage: () => 'request failed',
    serializers: {
      req: (req: Req) => ({ method: req.method, url: req.url }),
      res: (res: Res) => ({ statusCode: res.statusCode }),
    },
    customSuccessObject: (req, res, val: { responseTime: number }) => line(req as Req, res as Res, val.responseTime),
    customErrorObject: (req, res, err, val: { responseTime: number }) => ({ ...line(req as Req, res as Res, val.responseTime), err }),
  });
}
