import * as asciichart from 'asciichart';
import type { UsageReport } from './admin-client';

const DAY = 86_400_000;

export interface ChartOptions {
  /** Columns available; the days are summed into wider buckets when they do not fit. */
  columns?: number;
  height?: number;
  color?: boolean;
}

function days(from: string, to: string): string[] {
  const out: string[] = [];
  for (let t = Date.parse(from.slice(0, 10)); t < Date.parse(to); t += DAY) out.push(new Date(t).toISOString().slice(0, 10));
  return out;
}

const label = (x: number, max: number) => (max >= 10 ? Math.round(x).toLocaleString('en-US') : x.toFixed(2));

/**
 * Daily usage drawn in the terminal, one chart per metric: a line over the days of the report's
 * period (days without usage are zero), the quantity on the left axis and the first and last days
 * under it (a short period is stretched, a long one summed into buckets of days to fit the
 * terminal). Meant to be read at a glance; --csv or --json give the numbers.
 */
export function usageChart(report: UsageReport, o: ChartOptions = {}): string {
  const allDays = days(report.from, report.to);
  const metrics = [...new Set(report.rows.map((r) => r.metric ?? ''))].sort();
  if (!metrics.length || !allDays.length) return `no usage from ${report.from.slice(0, 10)} to ${report.to.slice(0, 10)}\n`;

  const width = Math.max(10, (o.columns ?? 100) - 16);
  const bucket = Math.ceil(allDays.length / width);
  const charts = metrics.map((metric) => {
    const perDay = new Map<string, number>();
    for (const r of report.rows) if ((r.metric ?? '') === metric && r.day) perDay.set(r.day, (perDay.get(r.day) ?? 0) + Number(r.quantity));
    const values: number[] = [];
    for (let i = 0; i < allDays.length; i += bucket) values.push(allDays.slice(i, i + bucket).reduce((sum, d) => sum + (perDay.get(d) ?? 0), 0));
    const total = [...perDay.values()].reduce((a, b) => a + b, 0);
    // A short period is widened (each day a few columns, drawn as steps) so the trend is not a smudge.
    const stretch = Math.max(1, Math.min(6, Math.floor(width / values.length)));
    const drawn = values.flatMap((v) => Array<number>(stretch).fill(v));
    const max = Math.max(...values);
    const peak = allDays[bucket * values.indexOf(max)];

    const plot = asciichart.plot(drawn, {
      height: o.height ?? 10,
      min: 0,
      format: (x) => label(x, max).padStart(12),
      colors: o.color ? [asciichart.cyan] : undefined,
    });
    // The series starts just right of the axis; the day labels are placed from there.
    const firstLine = plot.split('\n')[0]!;
    const axis = Math.max(firstLine.indexOf('┤'), firstLine.indexOf('┼'));
    const first = allDays[0]!;
    const last = allDays[allDays.length - 1]!;
    const span = drawn.length;
    const dayLine = ' '.repeat(axis + 1) + (span >= first.length + last.length + 2 ? first + last.padStart(span - first.length) : first);
    const title =
      `${metric} per ${bucket === 1 ? 'day' : `${bucket} days`}, ${first} to ${last}: ` +
      `total ${label(total, total >= 10 ? 10 : 0)}, peak ${label(max, max >= 10 ? 10 : 0)} on ${peak}${bucket === 1 ? '' : ` (+${bucket - 1} days)`}`;
    return `${title}\n${plot}\n${dayLine}\n`;
  });
  return charts.join('\n');
}
