/**
 * Rejects admin tokens a person typed rather than generated. A token from
 * `openssl rand -hex 32` (64 hex characters, ~256 bits) passes easily; so does
 * 32+ characters of base64 from a generator. Returns why a token is weak, or null.
 */
export function checkTokenStrength(token: string): string | null {
  if (token.length < 32) return `too short (${token.length} characters; at least 32 required, 64 hex recommended)`;
  if (!/^[\x21-\x7e]+$/.test(token)) return 'must be printable ASCII without spaces';
  const counts = new Map<string, number>();
  for (const ch of token) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  let bitsPerChar = 0;
  for (const n of counts.values()) {
    const p = n / token.length;
    bitsPerChar -= p * Math.log2(p);
  }
  if (counts.size < 10 || bitsPerChar < 3) return 'too little entropy (looks typed or repetitive, not generated)';
  for (let period = 1; period <= token.length / 2; period++) {
    if (
      token ===
      token
        .slice(0, period)
        .repeat(Math.ceil(token.length / period))
        .slice(0, token.length)
    ) {
      return 'too little entropy (a repeated pattern)';
    }
  }
  if (/(0123456789|abcdefghij|qwertyuiop|password|changeme|secret)/i.test(token)) {
    return 'too little entropy (contains a well-known sequence or word)';
  }
  return null;
}
