import type { Logger } from 'pino';
import { pinoHttp } from 'pino-http';

/** One line per request. Headers are logged through the logger's redaction; bodies never are. */
export function httpLogger(logger: Logger) {
  return pinoHttp({
    logger,
    genReqId: (req) => req.id,
    customLogLevel: (_req, res, err) => (err || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'info'),
    customProps: (_req, res) => ({ errorCode: (res as unknown as { locals?: { errorCode?: string } }).locals?.errorCode }),
    serializers: {
      req: (req: { id: string; method: string; url: string; headers: Record<string, unknown>; remoteAddress?: string }) => ({
        id: req.id,
        method: req.method,
        url: req.url,
        headers: req.headers,
        remoteAddress: req.remoteAddress,
      }),
    },
  });
}
