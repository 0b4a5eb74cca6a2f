import { useLocation } from 'preact-iso';
import { useState } from 'preact/hooks';
import { call } from '../api';
import { AuditTable } from '../components/audit-table';
import { ErrorNote, Field, Loading, useLoad } from '../components/ui';

const FILTERS = ['action', 'outcome', 'actor', 'actor_id', 'customer_id', 'target_id', 'request_id'] as const;

/** Filters and the page live in the URL, so a view of the log can be shared. */
export function Audit() {
  const loc = useLocation();
  const q = new URLSearchParams(loc.url.split('?')[1] ?? '');
  const current = Object.fromEntries(FILTERS.map((f) => [f, q.get(f) ?? ''])) as Record<(typeof FILTERS)[number], string>;
  const cursor = q.get('cursor') ?? '';
  const [form, setForm] = useState(current);
  const log = useLoad(() => {
    const query: Record<string, string | number> = { limit: 50 };
    for (const f of FILTERS) if (current[f]) query[f] = current[f];
    if (cursor) query.cursor = cursor;
    return call('get', '/api/audit', { query: query });
  }, [loc.url]);
  const go = (next: Record<string, string>) => {
    const p = new URLSearchParams(next);
    for (const [k, v] of [...p.entries()]) if (!v) p.delete(k);
    loc.route(`/console/audit${p.toString() ? `?${p.toString()}` : ''}`);
  };
  return (
    <>
      <h1>Audit log</h1>
      <form
        class="filters"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          go(form);
        }}
      >
        <Field label="Action" name="action" value={form.action} placeholder="customer.create" onInput={(v) => setForm({ ...form, action: v })} />
        <label class="field">
          <span>Outcome</span>
          <select name="outcome" value={form.outcome} onChange={(e) => setForm({ ...form, outcome: e.currentTarget.value })}>
            <option value="">Any</option>
            <option value="success">Success</option>
            <option value="failure">Failure</option>
            <option value="denied">Denied</option>
          </select>
        </label>
        <Field label="Actor id" name="actor_id" value={form.actor_id} onInput={(v) => setForm({ ...form, actor_id: v })} />
        <Field label="Customer id" name="customer_id" value={form.customer_id} onInput={(v) => setForm({ ...form, customer_id: v })} />
        <button type="submit">Filter</button>
      </form>
      <ErrorNote error={log.error} />
      {!log.data && !log.error && <Loading what="the audit log" />}
      {log.data && (
        <>
          <AuditTable label="Audit log" rows={log.data.data} full />
          <nav class="pager" aria-label="Pages of the audit log">
            {log.data.next_cursor && (
              <button type="button" onClick={() => go({ ...current, cursor: log.data!.next_cursor! })}>
                Older entries
              </button>
            )}
          </nav>
        </>
      )}
    </>
  );
}
