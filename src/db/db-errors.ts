/** Postgres and driver errors we turn into meaningful responses. */
interface PgLikeError {
  code?: string;
  constraint?: string;
  message?: string;
  name?: string;
}

export function isUniqueViolation(err: unknown, constraint?: string): boolean {
  const e = err as PgLikeError;
  return e?.code === '23505' && (constraint === undefined || e.constraint === constraint);
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EPIPE',
  'EHOSTUNREACH',
  '57P01',
  '57P02',
  '57P03', // admin shutdown, crash shutdown, cannot connect now
  '53300', // too many connections
  '08000',
  '08001',
  '08003',
  '08006', // connection exceptions
]);

/** The database is unreachable or going away: the request may be retried later. */
export function isDatabaseUnavailable(err: unknown): boolean {
  const e = err as PgLikeError;
  if (!e) return false;
  if (e.code && CONNECTION_CODES.has(e.code)) return true;
  if (e.name === 'KnexTimeoutError') return true;
  const msg = e.message ?? '';
  return /Connection terminated|Client has encountered a connection error|connect ECONNREFUSED|timeout exceeded when trying to connect/i.test(msg);
}
