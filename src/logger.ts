import pino, { Logger, DestinationStream } from 'pino';
import type { Config } from './config';

/**
 * Paths that may carry a secret anywhere in a log line. pino replaces them with
 * "[Redacted]" before the line is serialised.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers["stripe-signature"]',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  '*.password',
  '*.secret',
  '*.token',
  '*.api_key',
  '*.apiKey',
  '*.authorization',
  '*.secret_hash',
  '*.secretHash',
];

export function createLogger(config: Pick<Config, 'logLevel' | 'logPretty'>, destination?: DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level: config.logLevel,
    base: { service: 'billing-service' },
    redact: { paths: REDACT_PATHS, censor: '[Redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (destination) return pino(options, destination);
  if (config.logPretty && prettyAvailable()) {
    return pino({ ...options, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } } });
  }
  // Buffered: lines are written in 4 KiB chunks, not one write() per request line. The buffer
  // is flushed every second, on graceful shutdown (logger.flush) and by pino on process exit.
  const logger = pino(options, pino.destination({ dest: 1, minLength: 4096, sync: false }));
  setInterval(() => logger.flush(), 1000).unref();
  return logger;
}

function prettyAvailable(): boolean {
  try {
    require.resolve('pino-pretty');
    return true;
  } catch {
    return false; // production installs omit dev dependencies: plain JSON then
  }
}
