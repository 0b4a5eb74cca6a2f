import { call } from '../api';
import { ConfirmButton, date, ErrorNote, Loading, TableWrap, useLoad } from '../components/ui';

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
            <TableWrap label="Latest failures">
              <thead>
                <tr>
                  <th scope="col">Event</th>
                  <th scope="col">Customer</th>
                  <th scope="col">Metric</th>
                  <th scope="col">Quantity</th>
                  <th scope="col">Attempts</th>
                  <th scope="col">Error</th>
                </tr>
              </thead>
              <tbody>
                {r.recent_failures.map((f) => (
                  <tr key={f.id}>
                    <td>
                      <code>{f.id.slice(0, 8)}</code>
                    </td>
                    <td>
                      <a href={`/console/customers/${f.customer_id}`}>{f.customer_id.slice(0, 8)}</a>
                    </td>
                    <td>{f.metric}</td>
                    <td>{f.quantity}</td>
                    <td>{f.attempts}</td>
                    <td>{f.last_error ?? '—'}</td>
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
