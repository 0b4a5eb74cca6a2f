/**
 * The months a write stamped at receipt looks in for a retry's first copy (usage-repository.ts,
 * lookbackMonths): the other months of the last 35 days, and the next one at the turn.
 */
import { MONTH_TURN_WINDOW_MS, lookbackMonths } from '../../src/modules/usage/usage-repository';

const at = (iso: string) => Date.parse(iso);

test('when a write is mid-month, then it looks in the months the last 35 days reach, never its own', () => {
  expect(lookbackMonths(at('2026-12-07T17:00:00Z'))).toEqual(['2026-11-01']);
  expect(lookbackMonths(at('2026-12-31T12:00:00Z'))).toEqual(['2026-11-01']);
  // Thirty-five days before 3 March reach into January: both months before it.
  expect(lookbackMonths(at('2027-03-03T00:30:00Z'))).toEqual(['2027-01-01', '2027-02-01']);
  // And across the turn of a year.
  expect(lookbackMonths(at('2027-01-15T09:00:00Z'))).toEqual(['2026-12-01']);
});

test('when a write is within the window before a month turns, then it looks in the next month too; a moment earlier, not', () => {
  const turn = at('2027-01-01T00:00:00Z');
  expect(lookbackMonths(turn - MONTH_TURN_WINDOW_MS)).toEqual(['2026-11-01', '2027-01-01']);
  expect(lookbackMonths(turn - MONTH_TURN_WINDOW_MS - 1)).toEqual(['2026-11-01']);
  // Just after the turn, the month it came from is among the 35 days.
  expect(lookbackMonths(turn + 1)).toEqual(['2026-11-01', '2026-12-01']);
});
