import { call } from '../api';
import { date, ErrorNote, Loading, TableWrap, useLoad } from '../components/ui';

/** Events out: the vendor's endpoints and the latest events sent to them. */
export function EventsOut() {
  const endpoints = useLoad(() => call('get', '/api/webhook-endpoints', { query: { limit: 50 } }), []);
  const events = useLoad(() => call('get', '/api/events', { query: { limit: 25 } }), []);
  return (
    <>
      <h1>Events out</h1>
      <section aria-labelledby="ep-h">
        <h2 id="ep-h">Endpoints</h2>
        <ErrorNote error={endpoints.error} />
        {!endpoints.data && !endpoints.error && <Loading what="endpoints" />}
        {endpoints.data && endpoints.data.data.length === 0 && <p>No endpoint yet (create one with the API or billing-admin).</p>}
        {endpoints.data && endpoints.data.data.length > 0 && (
          <TableWrap label="Webhook endpoints">
            <thead>
              <tr>
                <th scope="col">URL</th>
                <th scope="col">Events</th>
                <th scope="col">Status</th>
              </tr>
            </thead>
            <tbody>
              {endpoints.data.data.map((e) => (
                <tr key={e.id}>
                  <td>{e.url}</td>
                  <td>{e.events.join(', ')}</td>
                  <td>{e.disabled ? `disabled (${e.disabled_reason ?? ''})` : 'enabled'}</td>
                </tr>
              ))}
            </tbody>
          </TableWrap>
        )}
      </section>
      <section aria-labelledby="ev-h">
        <h2 id="ev-h">Latest events</h2>
        <ErrorNote error={events.error} />
        {events.data && (
          <TableWrap label="Latest events">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Type</th>
                <th scope="col">Customer</th>
              </tr>
            </thead>
            <tbody>
              {events.data.data.map((e) => (
                <tr key={e.id}>
                  <td>{date(e.created_at)}</td>
                  <td>{e.type}</td>
                  <td>{e.customer_id ? <a href={`/console/customers/${e.customer_id}`}>{e.customer_id.slice(0, 8)}</a> : '—'}</td>
                </tr>
              ))}
            </tbody>
          </TableWrap>
        )}
      </section>
    </>
  );
}
