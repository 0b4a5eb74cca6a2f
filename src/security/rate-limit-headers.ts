/**
 * The draft-8 rate-limit headers (draft-ietf-httpapi-ratelimit-headers-08), written in one place for
 * every limit the service answers with: `RateLimit-Policy: "<name>"; q=<limit>; w=<window s>[; pk=:<key>:]`
 * and `RateLimit: "<name>"; r=<remaining>; t=<reset s>`.
 */
export interface RateLimitState {
  name: string;
  limit: number;
  windowSeconds: number;
  remaining: number;
  resetSeconds: number;
  /** The policy's partition key (a byte sequence, base64), when the limit is counted per key. */
  partitionKey?: string;
}

export function rateLimitHeaders(s: RateLimitState): { 'RateLimit-Policy': string; RateLimit: string } {
  const pk = s.partitionKey === undefined ? '' : `; pk=:${s.partitionKey}:`;
  return {
    'RateLimit-Policy': `"${s.name}"; q=${s.limit}; w=${s.windowSeconds}${pk}`,
    RateLimit: `"${s.name}"; r=${s.remaining}; t=${s.resetSeconds}`,
  };
}
