import { useLocation } from 'preact-iso';
import { useState } from 'preact/hooks';
import { call, type Answer } from '../api';
import { DataTable, date, ErrorNote, Field, Loading, SecretOnce, useLoad, useSubmit } from '../components/ui';

type Created = Answer<'/api/customers', 'post'>;

/** The list's state lives in the URL (?q=&status=&cursor=), so a filtered page can be bookmarked and shared. */
export function Customers() {
  const loc = useLocation();
  const q = new URLSearchParams(loc.url.split('?')[1] ?? '');
  const text = q.get('q') ?? '';
  const status = (q.get('status') ?? '') as '' | 'active' | 'deleted';
  const cursor = q.get('cursor') ?? '';
  const list = useLoad(
    () => call('get', '/api/customers', { query: { q: text || undefined, status: status || undefined, cursor: cursor || undefined, limit: 50 } }),
    [text, status, cursor],
  );
  const go = (next: Record<string, string>) => {
    const p = new URLSearchParams({ q: text, status, ...next });
    for (const [k, v] of [...p.entries()]) if (!v) p.delete(k);
    const s = p.toString();
    loc.route(`/console/customers${s ? `?${s}` : ''}`);
  };
  const [search, setSearch] = useState(text);
  const [created, setCreated] = useState<Created | null>(null);

  return (
    <>
      <h1>Customers</h1>
      <section aria-labelledby="new-h">
        <h2 id="new-h">New customer</h2>
        {created ? (
          <div>
            <p>
              Created <a href={`/console/customers/${created.customer.id}`}>{created.customer.company_name}</a> with its first API key.
            </p>
            <SecretOnce label="API key" value={created.api_key} />
            <button type="button" onClick={() => setCreated(null)}>
              Create another
            </button>
          </div>
        ) : (
          <CreateCustomer
            onCreated={(c) => {
              setCreated(c);
              list.reload();
            }}
          />
        )}
      </section>
      <form
        class="filters"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          go({ q: search.trim(), cursor: '' });
        }}
      >
        <Field label="Search: email, company or id" name="q" value={search} placeholder="acme" onInput={setSearch} />
        <label class="field">
          <span>Status</span>
          <select name="status" value={status} onChange={(e) => go({ status: e.currentTarget.value, cursor: '' })}>
            <option value="">Any</option>
            <option value="active">Active</option>
            <option value="deleted">Deleted</option>
          </select>
        </label>
        <button type="submit">Search</button>
      </form>
      <ErrorNote error={list.error} />
      {list.loading && !list.data && <Loading what="customers" />}
      {list.data && (
        <>
          <DataTable
            label="Customers"
            rows={list.data.data}
            rowKey={(c) => c.id}
            empty="No customers match."
            columns={[
              { head: 'Company', cell: (c) => <a href={`/console/customers/${c.id}`}>{c.company_name}</a> },
              { head: 'Email', cell: (c) => c.email },
              { head: 'Status', cell: (c) => c.status },
              { head: 'Created', cell: (c) => date(c.created_at) },
            ]}
          />
          <nav class="pager" aria-label="Pages of customers">
            {cursor && (
              <button type="button" onClick={() => history.back()}>
                Previous page
              </button>
            )}
            {list.data.next_cursor && (
              <button type="button" onClick={() => go({ cursor: list.data!.next_cursor! })}>
                Next page
              </button>
            )}
          </nav>
        </>
      )}
    </>
  );
}

function CreateCustomer({ onCreated }: { onCreated: (c: Created) => void }) {
  const [email, setEmail] = useState('');
  const [company, setCompany] = useState('');
  const submit = useSubmit(async () => onCreated(await call('post', '/api/customers', { body: { email: email.trim(), company_name: company.trim() } })));
  return (
    <form onSubmit={submit.onSubmit}>
      <Field label="Email" name="new-email" type="email" required value={email} onInput={setEmail} />
      <Field label="Company name" name="new-company" required value={company} onInput={setCompany} />
      <ErrorNote error={submit.error} />
      <button type="submit" class="primary" disabled={submit.busy}>
        Create customer
      </button>
    </form>
  );
}
