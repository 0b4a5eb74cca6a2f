/**
 * The draft-8 rate-limit headers (draft-ietf-httpapi-ratelimit-headers-08), written in one place for
 * every limit the service answers with: `RateLimit-Policy: "<name>"; q=<limit>; w=<window s>[; pk=:<key>:]`
 * and `RateLimit: "<name>"; r=<remaining>; t=<reset s>`. Made once per limit, so a request only
 * appends its own values.
 */
export function rateLimitHeaders(name: string, limit: number, windowSeconds: number) {
  const policy = `"${name}"; q=${limit}; w=${windowSeconds}`;
  const state = `"${name}"; r=`;
  return {
    /** `RateLimit-Policy`, with the partition key (a byte sequence, base64) when the limit is counted per key. */
    policy: (partitionKey?: string) => (partitionKey === undefined ? policy : `${policy}; pk=:${partitionKey}:`),
    /** `RateLimit`: what is left of the limit and the seconds until the window resets. */
    state: (remaining: number, resetSeconds: number) => `${state}${remaining}; t=${resetSeconds}`,
  };
}
