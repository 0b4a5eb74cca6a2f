import { useLocation, useRoute } from 'preact-iso';
import { useState } from 'preact/hooks';
import { ApiError, call, csvUrl, type Answer } from '../api';
import { AuditTable } from '../components/audit-table';
import { UsageChart } from '../components/usage-chart';
import { ConfirmButton, DataTable, date, ErrorNote, Field, Loading, SecretOnce, useLoad, useSubmit } from '../components/ui';
import { lastDays } from './overview';

type Customer = Answer<'/api/customers/{id}', 'get'>['customer'];

export function Customer() {
  const { params } = useRoute();
  const id = params.id!;
  const customer = useLoad(() => call('get', '/api/customers/{id}', { params: { id } }), [id]);
  if (customer.error) return <ErrorNote error={customer.error} />;
  if (!customer.data) return <Loading what="the customer" />;
  const c = customer.data.customer;
  return (
    <>
      <h1>{c.company_name}</h1>
      <p class="muted">
        {c.email} · {c.status} · <code>{c.id}</code>
      </p>
      <Profile c={c} reload={customer.reload} />
      <Keys id={id} deleted={c.status === 'deleted'} />
      <Subscriptions id={id} deleted={c.status === 'deleted'} />
      <Usage id={id} />
      <Deal id={id} />
      <License id={id} />
      <Invoices id={id} />
      <Trail id={id} />
    </>
  );
}

function Profile({ c, reload }: { c: Customer; reload: () => void }) {
  const loc = useLocation();
  const [email, setEmail] = useState(c.email);
  const [company, setCompany] = useState(c.company_name);
  const [saved, setSaved] = useState(false);
  const save = useSubmit(async () => {
    setSaved(false);
    await call('patch', '/api/customers/{id}', { params: { id: c.id }, body: { email: email.trim(), company_name: company.trim() } });
    setSaved(true);
    reload();
  });
  return (
    <section aria-labelledby="profile-h">
      <h2 id="profile-h">Profile</h2>
      <form onSubmit={save.onSubmit}>
        <Field label="Email" name="email" type="email" required value={email} onInput={setEmail} />
        <Field label="Company name" name="company" required value={company} onInput={setCompany} />
        <ErrorNote error={save.error} />
        <button type="submit" disabled={c.status === 'deleted' || save.busy}>
          Save
        </button>
        <span role="status">{saved ? ' Saved.' : ''}</span>
      </form>
      {c.status !== 'deleted' && (
        <ConfirmButton
          label="Delete customer"
          title={`Delete ${c.company_name}?`}
          body={<p>Every API key of {c.company_name} is revoked at once, on every instance. Usage and the audit trail are kept. This cannot be undone.</p>}
          confirm="Delete customer and revoke its keys"
          danger
          onConfirm={async () => {
            await call('delete', '/api/customers/{id}', { params: { id: c.id } });
            loc.route('/console/customers');
          }}
        />
      )}
    </section>
  );
}

/** A key's short handle for buttons: the first characters of its secret (its start is cust_<customer id>_<those>; a secret may hold _ too). */
const handle = (start: string) => `${start.replace(/^cust_[0-9a-f-]{36}_/, '')}…`;

function Keys({ id, deleted }: { id: string; deleted: boolean }) {
  const keys = useLoad(() => call('get', '/api/customers/{id}/keys', { params: { id } }), [id]);
  const [issued, setIssued] = useState<Answer<'/api/customers/{id}/keys', 'post'> | null>(null);
  const [grace, setGrace] = useState('0');
  const active = keys.data?.data.filter((k) => k.status === 'active') ?? [];
  const rotate = async () => {
    setIssued(await call('post', '/api/customers/{id}/keys', { params: { id }, body: { grace_period_seconds: Number(grace) } }));
    keys.reload();
  };
  return (
    <section aria-labelledby="keys-h">
      <h2 id="keys-h">API keys</h2>
      <ErrorNote error={keys.error} />
      {issued && <SecretOnce label="New API key" value={issued.api_key} />}
      {keys.data && (
        <DataTable
          label="API keys"
          rows={keys.data.data}
          rowKey={(k) => k.id}
          rowAttrs={(k) => ({ 'data-key-id': k.id })}
          columns={[
            { head: 'Starts with', cell: (k) => <code>{k.start}…</code> },
            { head: 'Status', cell: (k) => k.status },
            { head: 'Created', cell: (k) => date(k.created_at) },
            { head: 'Last used', cell: (k) => date(k.last_used_at) },
            { head: 'Ends', cell: (k) => date(k.expires_at ?? k.revoked_at) },
            {
              head: 'Actions',
              hideHead: true,
              cell: (k) =>
                k.status === 'active' && (
                  <ConfirmButton
                    label={`Revoke ${handle(k.start)}`}
                    title={`Revoke the key ${handle(k.start)}?`}
                    body={<p>Instances using the key {k.start}… are refused from now on, on every instance of the service.</p>}
                    confirm="Revoke the key"
                    danger
                    onConfirm={async () => {
                      await call('delete', '/api/customers/{id}/keys/{keyId}', { params: { id, keyId: k.id } });
                      keys.reload();
                    }}
                  />
                ),
            },
          ]}
        />
      )}
      {!deleted && (
        <div class="row">
          <label class="field">
            <span>Old keys keep working for</span>
            <select name="grace" value={grace} onChange={(e) => setGrace(e.currentTarget.value)}>
              <option value="0">no time (revoked at once)</option>
              <option value="3600">1 hour</option>
              <option value="86400">1 day</option>
              <option value="604800">7 days</option>
            </select>
          </label>
          <ConfirmButton
            label="Rotate key"
            title="Rotate the API key?"
            body={
              <p>
                A new key is made and shown once. {active.length} active key{active.length === 1 ? '' : 's'}{' '}
                {grace === '0' ? 'are revoked at once.' : `keep working for ${Number(grace) / 3600} hours, then end.`}
              </p>
            }
            confirm="Rotate"
            onConfirm={rotate}
          />
        </div>
      )}
    </section>
  );
}

function Subscriptions({ id, deleted }: { id: string; deleted: boolean }) {
  const subs = useLoad(() => call('get', '/api/customers/{id}/subscriptions', { params: { id } }), [id]);
  const plans = useLoad(() => call('get', '/api/plans', { query: { status: 'active' } }), []);
  const [plan, setPlan] = useState('');
  const live = subs.data?.data.find((s) => !['canceled', 'incomplete_expired'].includes(s.status));
  const choose = useSubmit(async () => {
    if (live) await call('patch', '/api/customers/{id}/subscriptions/{subscriptionId}', { params: { id, subscriptionId: live.id }, body: { plan } });
    else await call('post', '/api/customers/{id}/subscriptions', { params: { id }, body: { plan } });
    subs.reload();
  });
  return (
    <section aria-labelledby="subs-h">
      <h2 id="subs-h">Subscription</h2>
      <ErrorNote error={subs.error ?? plans.error} />
      {subs.data && subs.data.data.length === 0 && <p>No subscription.</p>}
      {subs.data && subs.data.data.length > 0 && (
        <DataTable
          label="Subscriptions"
          rows={subs.data.data}
          rowKey={(s) => s.id}
          columns={[
            { head: 'Plan', cell: (s) => s.plan.name, attrs: (s) => ({ 'data-plan': s.plan.code }) },
            { head: 'Status', cell: (s) => s.status },
            { head: 'Period', cell: (s) => `${date(s.current_period_start)} – ${date(s.current_period_end)}` },
            { head: 'Cancels', cell: (s) => (s.cancel_at_period_end ? 'at period end' : s.canceled_at ? date(s.canceled_at) : 'no') },
          ]}
        />
      )}
      {!deleted && plans.data && (
        <form class="row" onSubmit={choose.onSubmit}>
          <label class="field">
            <span>{live ? 'Change plan to' : 'Subscribe to'}</span>
            <select name="plan" required value={plan} onChange={(e) => setPlan(e.currentTarget.value)}>
              <option value="">Choose a plan</option>
              {plans.data.data
                .filter((p) => p.code !== live?.plan.code)
                .map((p) => (
                  <option key={p.code} value={p.code}>
                    {p.name} ({p.code})
                  </option>
                ))}
            </select>
          </label>
          <button type="submit" disabled={choose.busy}>
            {live ? 'Change plan' : 'Subscribe'}
          </button>
        </form>
      )}
      <ErrorNote error={choose.error} />
      {live && !live.cancel_at_period_end && (
        <ConfirmButton
          label="Cancel at period end"
          title="Cancel the subscription at the end of its period?"
          body={
            <p>
              {live.plan.name} stays active until {date(live.current_period_end)}, then ends. Its license follows.
            </p>
          }
          confirm="Cancel at period end"
          danger
          onConfirm={async () => {
            await call('delete', '/api/customers/{id}/subscriptions/{subscriptionId}', { params: { id, subscriptionId: live.id } });
            subs.reload();
          }}
        />
      )}
    </section>
  );
}

function Usage({ id }: { id: string }) {
  const { from, to, end } = lastDays(30);
  const usage = useLoad(() => call('get', '/api/customers/{id}/usage', { params: { id }, query: { from, to: end, group_by: 'day' } }), [id]);
  return (
    <section aria-labelledby="usage-h">
      <h2 id="usage-h">Usage, last 30 days</h2>
      <ErrorNote error={usage.error} />
      {usage.data ? <UsageChart rows={usage.data.totals} from={from} to={to} label="Usage per day and metric" /> : !usage.error && <Loading what="usage" />}
      <p>
        <a href={csvUrl('/api/reports/usage', {}, { customer_id: id, from, to: end, group_by: 'day' })} download>
          Download as CSV
        </a>{' '}
        <button type="button" onClick={usage.reload}>
          Refresh
        </button>
      </p>
    </section>
  );
}

const at = (seconds: number | null) => (seconds === null ? '—' : date(new Date(seconds * 1000).toISOString()));

function License({ id }: { id: string }) {
  const acts = useLoad(() => call('get', '/api/customers/{id}/activations', { params: { id } }), [id]);
  const lic = useLoad(() => call('get', '/api/customers/{id}/license', { params: { id } }), [id]);
  const none = lic.error instanceof ApiError && lic.error.code === 'LICENSE_NOT_FOUND';
  const c = lic.data?.claims;
  return (
    <section aria-labelledby="lic-h">
      <h2 id="lic-h">License</h2>
      {none ? <p>No license: the customer has no subscription.</p> : <ErrorNote error={lic.error} />}
      {c && lic.data && (
        <>
          <dl>
            <dt>Status</dt>
            <dd data-testid="license-status">{c.status}</dd>
            <dt>Valid until</dt>
            <dd>{at(c.valid_until)}</dd>
            <dt>Grace until</dt>
            <dd>{at(c.grace_until)}</dd>
            <dt>A license issued now expires</dt>
            <dd>{at(c.exp)}</dd>
            <dt>Instances</dt>
            <dd>
              {lic.data.instances.held} held{lic.data.instances.limit === null ? ', no limit' : ` of ${lic.data.instances.limit}`}
            </dd>
          </dl>
          <details>
            <summary>Claims a license issued now would carry</summary>
            <pre tabIndex={0}>{JSON.stringify(c, null, 2)}</pre>
          </details>
        </>
      )}
      <h3>Activated instances</h3>
      <ErrorNote error={acts.error} />
      {acts.data && acts.data.data.length === 0 && <p>No instance holds a seat.</p>}
      {acts.data && acts.data.data.length > 0 && (
        <DataTable
          label="Activated instances"
          rows={acts.data.data}
          rowKey={(a) => a.id}
          rowAttrs={(a) => ({ 'data-fingerprint': a.fingerprint })}
          columns={[
            {
              head: 'Instance',
              cell: (a) => (
                <>
                  <code>{a.fingerprint}</code> {a.name}
                </>
              ),
            },
            { head: 'Host', cell: (a) => a.hostname ?? '—' },
            { head: 'Last seen', cell: (a) => date(a.last_seen_at) },
            { head: 'State', cell: (a) => (a.released_at ? `released (${a.release_reason ?? ''})` : 'active') },
            {
              head: 'Actions',
              hideHead: true,
              cell: (a) =>
                !a.released_at && (
                  <ConfirmButton
                    label={`Release ${a.fingerprint}`}
                    title={`Release the instance ${a.fingerprint}?`}
                    body={<p>Its seat is freed now. The instance keeps its current license until it expires, and may activate again if a seat is free.</p>}
                    confirm="Release the instance"
                    danger
                    onConfirm={async () => {
                      await call('delete', '/api/customers/{id}/activations/{fingerprint}', { params: { id, fingerprint: a.fingerprint } });
                      acts.reload();
                    }}
                  />
                ),
            },
          ]}
        />
      )}
    </section>
  );
}

const money = (cents: number, currency: string) => `${(cents / 100).toLocaleString('en', { minimumFractionDigits: 2 })} ${currency.toUpperCase()}`;

/** What the customer is entitled to now: its plan with its own overrides (edited with the API or billing-admin). */
function Deal({ id }: { id: string }) {
  const deal = useLoad(() => call('get', '/api/customers/{id}/entitlements', { params: { id } }), [id]);
  const d = deal.data;
  return (
    <section aria-labelledby="deal-h">
      <h2 id="deal-h">Entitlements</h2>
      <ErrorNote error={deal.error} />
      {d && (
        <dl>
          <dt>Plan</dt>
          <dd>{d.plan ? `${d.plan.name} (${d.plan.code})` : 'none'}</dd>
          <dt>Features</dt>
          <dd>{d.effective.features.join(', ') || '—'}</dd>
          <dt>Limits</dt>
          <dd>
            {Object.entries(d.effective.limits)
              .map(([k, v]) => `${k}: ${v === null ? 'unlimited' : v.toLocaleString('en')}`)
              .join(', ') || '—'}
          </dd>
          <dt>Own overrides</dt>
          <dd>
            {d.overrides
              ? `${d.overrides.applies ? 'in force' : 'not in force'}${d.overrides.expires_at ? `, until ${date(d.overrides.expires_at)}` : ''}${d.overrides.note ? ` — ${d.overrides.note}` : ''}`
              : 'none'}
          </dd>
          <dt>Period</dt>
          <dd>
            {date(d.period.start)} – {date(d.period.end)}
          </dd>
        </dl>
      )}
    </section>
  );
}

function Invoices({ id }: { id: string }) {
  const invoices = useLoad(() => call('get', '/api/customers/{id}/invoices', { params: { id }, query: { limit: 12 } }), [id]);
  return (
    <section aria-labelledby="inv-h">
      <h2 id="inv-h">Invoices</h2>
      <ErrorNote error={invoices.error} />
      {invoices.data && invoices.data.data.length === 0 && <p>No invoice (with Stripe off, or before the first period ends).</p>}
      {invoices.data && invoices.data.data.length > 0 && (
        <DataTable
          label="Invoices"
          rows={invoices.data.data}
          rowKey={(i) => i.id}
          columns={[
            {
              head: 'Number',
              cell: (i) =>
                i.hosted_invoice_url ? (
                  <a href={i.hosted_invoice_url} rel="noreferrer noopener" target="_blank">
                    {i.number ?? i.stripe_invoice_id}
                  </a>
                ) : (
                  (i.number ?? i.stripe_invoice_id)
                ),
            },
            { head: 'Status', cell: (i) => i.status },
            { head: 'Total', cell: (i) => money(i.total, i.currency) },
            { head: 'Due', cell: (i) => money(i.amount_remaining, i.currency) },
            { head: 'Period', cell: (i) => `${date(i.period.start)} – ${date(i.period.end)}` },
          ]}
        />
      )}
    </section>
  );
}

function Trail({ id }: { id: string }) {
  const trail = useLoad(() => call('get', '/api/audit', { query: { customer_id: id, limit: 20 } }), [id]);
  return (
    <section aria-labelledby="trail-h">
      <h2 id="trail-h">Audit trail</h2>
      <ErrorNote error={trail.error} />
      {trail.data && <AuditTable label="Audit trail" rows={trail.data.data} />}
      <p>
        <a href={`/console/audit?customer_id=${id}`}>The whole trail</a>
      </p>
    </section>
  );
}
