/** Durations in settings and requests: a whole number of days, hours or minutes (`7d`, `12h`, `30m`). */
const DURATION_RE = /^([1-9]\d{0,6})([dhm])$/;
const UNIT_SECONDS = { d: 86_400, h: 3_600, m: 60 } as const;

/** The duration in seconds, or null when the text is not one. */
export function parseDuration(text: string): number | null {
  const m = DURATION_RE.exec(text.trim());
  if (!m) return null;
  return Number(m[1]) * UNIT_SECONDS[m[2] as keyof typeof UNIT_SECONDS];
}
