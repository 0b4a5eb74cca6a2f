import { call } from '../api';
import { UsageChart } from '../components/usage-chart';
import { CustomerLink, DataTable, date, ErrorNote, Loading, useLoad } from '../components/ui';

/** The last `n` UTC days, today included: `to` is the last day shown, `end` the API's exclusive end (tomorrow). */
export const lastDays = (n: number) => {
  const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
  return { from: day(-(n - 1)), to: day(0), end: day(1) };
};

export function Overview() {
  const { from, to, end } = lastDays(30);
  const usage = useLoad(() => call('get', '/api/reports/usage', { query: { from, to: end, group_by: 'day' } }), []);
  const webhooks = useLoad(() => call('get', '/api/reports/webhooks'), []);
  const counts = useLoad(() => call('get', '/api/reports/overview'), []);
  const preflight = useLoad(() => call('get', '/api/reports/preflight'), []);
  // The outbox's backlog comes with the counts (not the forwarding report, whose totals read every event).
  const forwarding = { data: counts.data?.forwarding, error: counts.error };
  const n = (v: number) => v.toLocaleString('en');
  return (
    <>
      <h1>Overview</h1>
      <ErrorNote error={counts.error} />
      {counts.data && (
        <div class="cards">
          <section class="card" aria-labelledby="cust-h">
            <h2 id="cust-h">Customers</h2>
            <dl>
              <dt>Active</dt>
              <dd data-testid="customers-active">{n(counts.data.customers.active)}</dd>
              <dt>Deleted</dt>
              <dd>{n(counts.data.customers.deleted)}</dd>
            </dl>
            <a href="/console/customers">All customers</a>
          </section>
          <section class="card" aria-labelledby="subs-h">
            <h2 id="subs-h">Subscriptions</h2>
            <dl>
              {Object.entries(counts.data.subscriptions)
                .filter(([, v]) => v > 0)
                .map(([k, v]) => (
                  <>
                    <dt key={`t-${k}`}>{k.replace('_', ' ')}</dt>
                    <dd key={`d-${k}`}>{n(v)}</dd>
                  </>
                ))}
            </dl>
          </section>
          <section class="card" aria-labelledby="lic-h">
            <h2 id="lic-h">Licenses</h2>
            <dl>
              <dt>Valid</dt>
              <dd>{n(counts.data.licenses.active + counts.data.licenses.trialing)}</dd>
              <dt>In grace</dt>
              <dd data-testid="licenses-grace">{n(counts.data.licenses.grace)}</dd>
              <dt>Expired</dt>
              <dd>{n(counts.data.licenses.expired)}</dd>
              <dt>No subscription</dt>
              <dd>{n(counts.data.licenses.none)}</dd>
            </dl>
          </section>
        </div>
      )}
      <section aria-labelledby="usage-h">
        <h2 id="usage-h">Usage, last 30 days</h2>
        <ErrorNote error={usage.error} />
        {usage.data ? (
          <UsageChart rows={sumByDay(usage.data.rows)} from={from} to={to} label="All customers, per day and metric" />
        ) : (
          !usage.error && <Loading what="usage" />
        )}
      </section>
      <div class="cards">
        <section class="card" aria-labelledby="fwd-h">
          <h2 id="fwd-h">Forwarding to Stripe</h2>
          {forwarding.data && (
            <dl>
              <dt>Stripe</dt>
              <dd>{forwarding.data.stripe_enabled ? 'on' : 'off (usage is kept locally)'}</dd>
              <dt>Backlog</dt>
              <dd data-testid="backlog">{forwarding.data.pending.toLocaleString('en')} events</dd>
              <dt>Oldest waiting</dt>
              <dd>
                {forwarding.data.oldest_pending_at
                  ? `${date(forwarding.data.oldest_pending_at)} (${Math.round(forwarding.data.oldest_pending_age_seconds)} s)`
                  : 'none'}
              </dd>
              <dt>Parked (failed)</dt>
              <dd>
                {forwarding.data.failed.toLocaleString('en')} {forwarding.data.failed > 0 && <a href="/console/forwarding">review and retry</a>}
              </dd>
            </dl>
          )}
        </section>
        <section class="card" aria-labelledby="pre-h">
          <h2 id="pre-h">Preflight</h2>
          <ErrorNote error={preflight.error} />
          {preflight.data && (
            <>
              <p data-testid="preflight">
                {preflight.data.passed} of {preflight.data.passed + preflight.data.failed} production checks pass.
              </p>
              {preflight.data.failed > 0 && (
                <details>
                  <summary>What fails, and the fix</summary>
                  <ul>
                    {preflight.data.checks
                      .filter((c) => !c.ok)
                      .map((c, i) => (
                        <li key={i}>
                          <strong>{c.name}</strong>: {c.detail}
                        </li>
                      ))}
                  </ul>
                </details>
              )}
            </>
          )}
        </section>
        <section class="card" aria-labelledby="wh-h">
          <h2 id="wh-h">Stripe webhooks</h2>
          <ErrorNote error={webhooks.error} />
          {webhooks.data && (
            <dl>
              <dt>Processed</dt>
              <dd>{webhooks.data.processed.toLocaleString('en')}</dd>
              <dt>Failing</dt>
              <dd>
                {webhooks.data.failing.toLocaleString('en')} {webhooks.data.failing > 0 && <a href="/console/webhooks">see them</a>}
              </dd>
            </dl>
          )}
        </section>
      </div>
      {forwarding.data && forwarding.data.recent_failures.length > 0 && (
        <section aria-labelledby="fail-h">
          <h2 id="fail-h">Latest forwarding failures</h2>
          <DataTable
            label="Latest forwarding failures"
            rows={forwarding.data.recent_failures}
            rowKey={(f) => f.id}
            columns={[
              { head: 'Customer', cell: (f) => <CustomerLink id={f.customer_id} /> },
              { head: 'Metric', cell: (f) => f.metric },
              { head: 'Attempts', cell: (f) => f.attempts },
              { head: 'Error', cell: (f) => f.last_error ?? '—' },
            ]}
          />
        </section>
      )}
    </>
  );
}

/** The report by day has a row per customer, day and metric; the overview shows the sum per day and metric. */
function sumByDay(rows: { day?: string; metric?: string; quantity: string }[]) {
  const sums = new Map<string, { day: string; metric: string; quantity: number }>();
  for (const r of rows) {
    const day = (r.day ?? '').slice(0, 10);
    const k = `${day} ${r.metric ?? ''}`;
    const s = sums.get(k) ?? { day, metric: r.metric ?? '', quantity: 0 };
    s.quantity += Number(r.quantity);
    sums.set(k, s);
  }
  return [...sums.values()].map((s) => ({ ...s, quantity: String(s.quantity) }));
}
