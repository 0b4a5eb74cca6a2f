import { call } from '../api';
import { date, ErrorNote, Loading, TableWrap, useLoad } from '../components/ui';

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
            <TableWrap label="Failing Stripe events">
              <thead>
                <tr>
                  <th scope="col">Event</th>
                  <th scope="col">Type</th>
                  <th scope="col">Attempts</th>
                  <th scope="col">Received</th>
                  <th scope="col">Error</th>
                </tr>
              </thead>
              <tbody>
                {r.failing_events.map((e) => (
                  <tr key={e.id}>
                    <td>
                      <code>{e.id}</code>
                    </td>
                    <td>{e.type}</td>
                    <td>{e.attempts}</td>
                    <td>{date(e.received_at)}</td>
                    <td>{e.last_error ?? '—'}</td>
                  </tr>
                ))}
              </tbody>
            </TableWrap>
          )}
        </>
      )}
    </>
  );
}
