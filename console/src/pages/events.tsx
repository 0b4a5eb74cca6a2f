import { useState } from 'preact/hooks';
import { call } from '../api';
import { CustomerLink, DataTable, date, ErrorNote, Loading, useLoad } from '../components/ui';

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
          <DataTable
            label="Webhook endpoints"
            rows={endpoints.data.data}
            rowKey={(e) => e.id}
            columns={[
              { head: 'URL', cell: (e) => e.url },
              { head: 'Events', cell: (e) => e.events.join(', ') },
              {
                head: 'Status',
                cell: (e) => (e.disabled ? `disabled (${e.disabled_reason ?? ''})` : e.failing_since ? `failing since ${date(e.failing_since)}` : 'enabled'),
              },
              { head: 'Last success', cell: (e) => date(e.last_success_at) },
              {
                head: 'Deliveries',
                hideHead: true,
                cell: (e) => (
                  <button type="button" onClick={() => setShown(shown === e.id ? null : e.id)} aria-expanded={shown === e.id}>
                    Deliveries
                  </button>
                ),
              },
            ]}
          />
        )}
      </section>
      {shown && <Deliveries endpoint={shown} url={endpoints.data?.data.find((e) => e.id === shown)?.url ?? ''} />}
      <section aria-labelledby="ev-h">
        <h2 id="ev-h">Latest events</h2>
        <ErrorNote error={events.error} />
        {events.data && (
          <DataTable
            label="Latest events"
            rows={events.data.data}
            rowKey={(e) => e.id}
            columns={[
              { head: 'When', cell: (e) => date(e.created_at) },
              { head: 'Type', cell: (e) => e.type },
              { head: 'Customer', cell: (e) => (e.customer_id ? <CustomerLink id={e.customer_id} /> : '—') },
            ]}
          />
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
        <DataTable
          label={`Deliveries to ${url}`}
          rows={list.data.data}
          rowKey={(d) => d.id}
          columns={[
            { head: 'When', cell: (d) => date(d.attempted_at) },
            { head: 'Event', cell: (d) => d.event_type },
            { head: 'Outcome', cell: (d) => d.outcome },
            { head: 'Status', cell: (d) => d.status ?? '—' },
            { head: 'Time', cell: (d) => `${d.duration_ms} ms` },
            { head: 'Error', cell: (d) => d.error ?? '—' },
          ]}
        />
      )}
    </section>
  );
}
