import { useState } from 'preact/hooks';
import { call } from '../api';
import { date, ErrorNote, Loading, TableWrap, useLoad } from '../components/ui';

/** Events out: the vendor's endpoints and the latest events sent to them. */
export function EventsOut() {
  const endpoints = useLoad(() => call('get', '/api/webhook-endpoints', { query: { limit: 50 } }), []);
  const events = useLoad(() => call('get', '/api/events', { query: { limit: 25 } }), []);
  const [shown, setShown] = useState<string | null>(null);
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
                <th scope="col">Last success</th>
                <th scope="col">
                  <span class="visually-hidden">Deliveries</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {endpoints.data.data.map((e) => (
                <tr key={e.id}>
                  <td>{e.url}</td>
                  <td>{e.events.join(', ')}</td>
                  <td>{e.disabled ? `disabled (${e.disabled_reason ?? ''})` : e.failing_since ? `failing since ${date(e.failing_since)}` : 'enabled'}</td>
                  <td>{date(e.last_success_at)}</td>
                  <td>
                    <button type="button" onClick={() => setShown(shown === e.id ? null : e.id)} aria-expanded={shown === e.id}>
                      Deliveries
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </TableWrap>
        )}
      </section>
      {shown && <Deliveries endpoint={shown} url={endpoints.data?.data.find((e) => e.id === shown)?.url ?? ''} />}
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

/** An endpoint's latest delivery attempts: what was sent, what came back. */
function Deliveries({ endpoint, url }: { endpoint: string; url: string }) {
  const list = useLoad(() => call('get', '/api/webhook-endpoints/{id}/deliveries', { params: { id: endpoint }, query: { limit: 25 } }), [endpoint]);
  return (
    <section aria-labelledby="del-h">
      <h2 id="del-h">Deliveries to {url}</h2>
      <ErrorNote error={list.error} />
      {list.data && list.data.data.length === 0 && <p>No delivery yet.</p>}
      {list.data && list.data.data.length > 0 && (
        <TableWrap label={`Deliveries to ${url}`}>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Event</th>
              <th scope="col">Outcome</th>
              <th scope="col">Status</th>
              <th scope="col">Time</th>
              <th scope="col">Error</th>
            </tr>
          </thead>
          <tbody>
            {list.data.data.map((d) => (
              <tr key={d.id}>
                <td>{date(d.attempted_at)}</td>
                <td>{d.event_type}</td>
                <td>{d.outcome}</td>
                <td>{d.status ?? '—'}</td>
                <td>{d.duration_ms} ms</td>
                <td>{d.error ?? '—'}</td>
              </tr>
            ))}
          </tbody>
        </TableWrap>
      )}
    </section>
  );
}
