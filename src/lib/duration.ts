/**
 * Durations in settings and requests: a whole number of days, hours or minutes (`7d`, `12h`, `30m`);
 * where a setting needs finer steps (webhook timeouts and retry delays), seconds too (`5s`).
 */
const DURATION_RE = /^([1-9]\d{0,6})([dhm])$/;
const DURATION_WITH_SECONDS_RE = /^([1-9]\d{0,6})([dhms])$/;
const UNIT_SECONDS = { d: 86_400, h: 3_600, m: 60, s: 1 } as const;

/** The duration in seconds, or null when the text is not one. */
export function parseDuration(text: string, opts: { seconds?: boolean } = {}): number | null {
  const m = (opts.seconds ? DURATION_WITH_SECONDS_RE : DURATION_RE).exec(text.trim());
  if (!m) return null;
  return Number(m[1]) * UNIT_SECONDS[m[2] as keyof typeof UNIT_SECONDS];
}
