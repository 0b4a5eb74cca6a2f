import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { DataTable } from './ui';

export interface DayRow {
  day?: string;
  metric?: string;
  quantity: string;
}

const COLOURS = ['#1d4ed8', '#b45309', '#047857', '#7c3aed', '#be123c', '#0e7490'];

/** Every UTC day from `from` to `to` (YYYY-MM-DD), so a day without usage is a 0, not a gap. */
export function daysBetween(from: string, to: string): string[] {
  const out: string[] = [];
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= Date.parse(`${to}T00:00:00Z`); t += 86_400_000) out.push(new Date(t).toISOString().slice(0, 10));
  return out;
}

/**
 * Usage per day and metric: a uPlot line chart (it styles through the CSSOM only, which the page's
 * policy allows) and, for screen readers and for reading exact numbers, the same data as a table.
 */
export function UsageChart({ rows, from, to, label }: { rows: DayRow[]; from: string; to: string; label: string }) {
  const box = useRef<HTMLDivElement>(null);
  const days = daysBetween(from, to);
  const metrics = [...new Set(rows.map((r) => r.metric ?? ''))].sort();
  const value = new Map(rows.map((r) => [`${(r.day ?? '').slice(0, 10)} ${r.metric ?? ''}`, Number(r.quantity)]));
  const series = metrics.map((m) => days.map((d) => value.get(`${d} ${m}`) ?? 0));

  useEffect(() => {
    const el = box.current;
    if (!el || metrics.length === 0) return;
    const width = Math.max(280, el.clientWidth);
    const plot = new uPlot(
      {
        width,
        height: 260,
        series: [{}, ...metrics.map((m, i) => ({ label: m, stroke: COLOURS[i % COLOURS.length], width: 2, points: { show: days.length <= 31 } }))],
        axes: [{}, { size: 60 }],
        scales: { x: { time: true } },
        legend: { live: false },
      },
      [days.map((d) => Date.parse(`${d}T00:00:00Z`) / 1000), ...series],
      el,
    );
    const resize = () => plot.setSize({ width: Math.max(280, el.clientWidth), height: 260 });
    window.addEventListener('resize', resize);
    return () => {
      window.removeEventListener('resize', resize);
      plot.destroy();
    };
  }, [JSON.stringify(rows), from, to]);

  const totals = metrics.map((m, i) => [m, series[i]!.reduce((a, b) => a + b, 0)] as const);
  return (
    <figure class="chart">
      <figcaption>{label}</figcaption>
      {metrics.length === 0 ? (
        <p class="muted">
          No usage from {from} to {to}.
        </p>
      ) : (
        <>
          <div ref={box} class="chart-box" aria-hidden="true" data-testid="usage-chart" />
          <DataTable
            label={`${label}: totals by metric`}
            rows={totals.map(([metric, total], i) => ({ metric, total, last: series[i]![series[i]!.length - 1] ?? 0 }))}
            rowKey={(t) => t.metric}
            columns={[
              { head: 'Metric', rowHeader: true, cell: (t) => t.metric },
              { head: 'Total', cell: (t) => t.total.toLocaleString('en'), attrs: (t) => ({ 'data-metric-total': t.metric }) },
              { head: 'Last day', cell: (t) => t.last.toLocaleString('en') },
            ]}
          />
        </>
      )}
    </figure>
  );
}
