import { call } from '../api';
import { DataTable, date, ErrorNote, Loading, useLoad } from '../components/ui';

export function StripeWebhooks() {
  const report = useLoad(() => call('get', '/api/reports/webhooks'), []);
  const r = report.data;
  return (
    <>
      <h1>Stripe webhooks</h1>
      <ErrorNote error={report.error} />
      {!r && !report.error && <Loading what="the webhook report" />}
      {r && (
        <>
          <p>
            {r.processed.toLocaleString('en')} events processed; {r.failing.toLocaleString('en')} failing and waiting for Stripe to send them again.
          </p>
          {r.failing_events.length > 0 && (
            <DataTable
              label="Failing Stripe events"
              rows={r.failing_events}
              rowKey={(e) => e.id}
              columns={[
                { head: 'Event', cell: (e) => <code>{e.id}</code> },
                { head: 'Type', cell: (e) => e.type },
                { head: 'Attempts', cell: (e) => e.attempts },
                { head: 'Received', cell: (e) => date(e.received_at) },
                { head: 'Error', cell: (e) => e.last_error ?? '—' },
              ]}
            />
          )}
        </>
      )}
    </>
  );
}
