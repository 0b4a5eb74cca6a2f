/** `<max>/<window>`: 100/15m, 60/1h, 5/30s, 1000/1d. */
export function parseLimit(text: string): { max: number; windowMs: number } | null {
  const m = /^(\d{1,9})\/(\d{1,6})(ms|s|m|h|d)$/.exec(text.trim());
  if (!m) return null;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[3] as 'ms' | 's' | 'm' | 'h' | 'd'];
  const max = Number(m[1]);
  const windowMs = Number(m[2]) * unit;
  return max >= 1 && windowMs >= 1 ? { max, windowMs } : null;
}
