import { InvalidArgumentError } from '@commander-js/extra-typings';

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)(Z|[+-]\d{2}:?\d{2})?$/i;

/**
 * A date flag (--from, --to): a date (2026-11-01: its midnight, UTC) or a date-time with or without
 * its offset (2026-11-01T09:30, 2026-11-01 09:30:00+01:00; none given: UTC), sent to the service
 * as an ISO date-time with its offset, which every route's query takes.
 */
export function dateFlag(value: string): string {
  const v = value.trim();
  let iso: string | null = null;
  if (DATE.test(v)) iso = `${v}T00:00:00Z`;
  else {
    const m = DATE_TIME.exec(v);
    if (m) {
      const time = m[2]!.length === 5 ? `${m[2]}:00` : m[2]!;
      const offset = !m[3] || m[3].toUpperCase() === 'Z' ? 'Z' : m[3].includes(':') ? m[3] : `${m[3].slice(0, 3)}:${m[3].slice(3)}`;
      iso = `${m[1]}T${time}${offset}`;
    }
  }
  // new Date() rolls 2026-02-30 over to March: a day that does not exist is refused instead.
  const day = iso ? new Date(`${iso.slice(0, 10)}T00:00:00Z`) : null;
  const exists = day !== null && !Number.isNaN(day.getTime()) && day.toISOString().slice(0, 10) === iso!.slice(0, 10);
  if (!iso || !exists || Number.isNaN(new Date(iso).getTime())) {
    throw new InvalidArgumentError('must be a date (2026-11-01) or a date-time (2026-11-01T09:30, 2026-11-01T09:30:00+01:00)');
  }
  return iso;
}

/** The same moment a calendar month later (UTC); the 31st becomes the next month's last day. */
export function monthAfter(iso: string): string {
  const d = new Date(iso);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth() + 1;
  const last = new Date(Date.UTC(y, m + 1, 0)).getUTCDate();
  const next = new Date(Date.UTC(y, m, Math.min(d.getUTCDate(), last), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), d.getUTCMilliseconds()));
  return next.toISOString();
}
