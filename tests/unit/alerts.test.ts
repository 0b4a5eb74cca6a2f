import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { createMetrics } from '../../src/metrics';

const root = path.resolve(__dirname, '..', '..');
const rules = parse(fs.readFileSync(path.join(root, 'docs/prometheus/alerts.yml'), 'utf8')) as {
  groups: { name: string; rules: { alert: string; expr: string; for: string; labels: { severity: string }; annotations: Record<string, string> }[] }[];
};
const all = rules.groups.flatMap((g) => g.rules);

test('when the alert rules are read, then the required alerts are there and each is complete', () => {
  expect(all.map((r) => r.alert)).toEqual(
    expect.arrayContaining([
      'BillingAuthFailureRateHigh',
      'BillingServerErrorRateHigh',
      'BillingLatencyP95High',
      'BillingWebhookFailuresHigh',
      'BillingForwarderBacklogGrowing',
    ]),
  );
  for (const r of all) {
    expect([r.alert, typeof r.expr, /^\d+[smh]$/.test(r.for), ['warning', 'critical'].includes(r.labels.severity), !!r.annotations.summary]).toEqual([
      r.alert,
      'string',
      true,
      true,
      true,
    ]);
  }
});

test('when an alert names a metric, then the service exports it', async () => {
  const metrics = createMetrics();
  const exported = new Set<string>();
  for (const m of await metrics.registry.getMetricsAsJSON()) {
    exported.add(m.name);
    if (String(m.type) === 'histogram') for (const s of ['_bucket', '_count', '_sum']) exported.add(m.name + s);
  }
  // Gauges read at scrape time are registered by watch(); their names are fixed here.
  exported.add('usage_forwarder_backlog').add('usage_forwarder_oldest_pending_seconds').add('db_pool_connections');
  exported.add('webhook_oldest_pending_seconds').add('webhook_endpoints_disabled');
  for (const r of all) {
    const names = r.expr.match(/\b[a-z_]+(?=\{|\[)/g)?.filter((n) => !['rate', 'sum', 'max', 'deriv', 'histogram_quantile', 'by'].includes(n)) ?? [];
    expect(names.length).toBeGreaterThan(0);
    for (const n of names) expect([r.alert, n, exported.has(n)]).toEqual([r.alert, n, true]);
  }
});

test('when the runbook is read, then it has a section for every alert', () => {
  const runbook = fs.readFileSync(path.join(root, 'docs/RUNBOOK.md'), 'utf8').toLowerCase();
  for (const r of all) {
    expect(r.annotations.runbook).toBe(`docs/RUNBOOK.md#${r.alert.toLowerCase()}`);
    expect([r.alert, runbook.includes(`## ${r.alert.toLowerCase()}`)]).toEqual([r.alert, true]);
  }
});
