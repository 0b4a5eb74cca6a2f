import { call } from '../api';
import { ConfirmButton, CustomerLink, DataTable, date, ErrorNote, Loading, useLoad } from '../components/ui';

export function Forwarding() {
  const report = useLoad(() => call('get', '/api/reports/forwarding'), []);
  const r = report.data;
  return (
    <>
      <h1>Usage forwarding to Stripe</h1>
      <ErrorNote error={report.error} />
      {!r && !report.error && <Loading what="the forwarding report" />}
      {r && (
        <>
          <dl class="stats">
            <dt>Stripe</dt>
            <dd>{r.stripe_enabled ? 'on' : 'off'}</dd>
            <dt>Waiting</dt>
            <dd>{r.pending.toLocaleString('en')}</dd>
            <dt>Due now</dt>
            <dd>{r.due.toLocaleString('en')}</dd>
            <dt>Parked (failed)</dt>
            <dd>{r.failed.toLocaleString('en')}</dd>
            <dt>Sent</dt>
            <dd>{r.sent.toLocaleString('en')}</dd>
            <dt>Kept locally</dt>
            <dd>{r.local.toLocaleString('en')}</dd>
            <dt>Oldest waiting</dt>
            <dd>{date(r.oldest_pending_at)}</dd>
            <dt>Rate</dt>
            <dd>{r.events_per_second.toFixed(1)} events/s</dd>
          </dl>
          {r.failed > 0 && (
            <ConfirmButton
              label="Retry every parked event"
              title="Retry every parked event?"
              body={
                <p>
                  {r.failed.toLocaleString('en')} events that Stripe refused or that ran out of attempts are queued again, with a fresh budget of attempts. Each
                  is sent once: Stripe dedupes by its identifier.
                </p>
              }
              confirm="Retry them"
              onConfirm={async () => {
                await call('post', '/api/reports/forwarding/retry', { body: {} });
                report.reload();
              }}
            />
          )}
          <h2>Latest failures</h2>
          {r.recent_failures.length === 0 ? (
            <p>None.</p>
          ) : (
            <DataTable
              label="Latest failures"
              rows={r.recent_failures}
              rowKey={(f) => f.id}
              columns={[
                { head: 'Event', cell: (f) => <code>{f.id.slice(0, 8)}</code> },
                { head: 'Customer', cell: (f) => <CustomerLink id={f.customer_id} /> },
                { head: 'Metric', cell: (f) => f.metric },
                { head: 'Quantity', cell: (f) => f.quantity },
                { head: 'Attempts', cell: (f) => f.attempts },
                { head: 'Error', cell: (f) => f.last_error ?? '—' },
              ]}
            />
          )}
        </>
      )}
    </>
  );
}
