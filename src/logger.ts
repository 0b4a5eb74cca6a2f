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

/**
 * A customer key anywhere in a text: `cust_<customerId>_<secret>`, whole or cut short, or anything
 * else after `cust_` that could be part of one. The customer id stays (it is no secret and tells
 * support whose key leaked); the rest is replaced.
 */
const KEY_IN_TEXT = /cust_(?:([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})(_[A-Za-z0-9_-]*)?|[A-Za-z0-9_-]+)/g;
const MASK = '[masked]';

/** The text with every customer key (or part of one) masked: for log lines and error messages. */
export function maskSecrets(text: string): string {
  // The common case (no key) costs one indexOf.
  if (!text.includes('cust_')) return text;
  return text.replace(KEY_IN_TEXT, (m: string, id: string | undefined, rest: string | undefined, offset: number) => {
    if (!id) return `cust_${MASK}`;
    // A bare customer id, or one masked already (a message masked, then logged).
    if (!rest || (rest === '_' && text.startsWith(MASK, offset + m.length))) return m;
    return `cust_${id}_${MASK}`;
  });
}

export function createLogger(config: Pick<Config, 'logLevel' | 'logPretty'>, destination?: DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level: config.logLevel,
    base: { service: 'billing-service' },
    redact: { paths: REDACT_PATHS, censor: '[Redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Redaction names fields; a key can also be inside any text (a URL, an error's message or stack):
    // each finished line is masked before it is written.
    hooks: { streamWrite: maskSecrets },
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
