import { useState } from 'preact/hooks';
import { call, type Answer } from '../api';
import { ConfirmButton, ErrorNote, Field, Loading, TableWrap, useLoad } from '../components/ui';

export function Plans() {
  const plans = useLoad(() => call('get', '/api/plans'), []);
  return (
    <>
      <h1>Plans</h1>
      <ErrorNote error={plans.error} />
      {!plans.data && !plans.error && <Loading what="plans" />}
      {plans.data && (
        <TableWrap label="Plans">
          <thead>
            <tr>
              <th scope="col">Code</th>
              <th scope="col">Name</th>
              <th scope="col">Features</th>
              <th scope="col">Status</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {plans.data.data.map((p) => (
              <tr key={p.code}>
                <td>
                  <code>{p.code}</code>
                </td>
                <td>
                  <PlanName plan={p} reload={plans.reload} />
                </td>
                <td>{p.entitlements.features.join(', ') || '—'}</td>
                <td>{p.status}</td>
                <td>
                  {p.status === 'active' && (
                    <ConfirmButton
                      label={`Archive ${p.code}`}
                      title={`Archive the plan ${p.code}?`}
                      body={<p>No new subscription can take {p.name}. Customers on it keep it until they change plan.</p>}
                      confirm="Archive the plan"
                      danger
                      onConfirm={async () => {
                        await call('patch', '/api/plans/{code}', { params: { code: p.code }, body: { status: 'archived' } });
                        plans.reload();
                      }}
                    />
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </TableWrap>
      )}
      <NewPlan onCreated={plans.reload} />
    </>
  );
}

type Plan = Answer<'/api/plans', 'get'>['data'][number];

/** Edits a plan's name and features; its limits, overage and thresholds are sent back as they are. */
function PlanName({ plan, reload }: { plan: Plan; reload: () => void }) {
  const [editing, setEditing] = useState(false);
  const [name, setName] = useState(plan.name);
  const [features, setFeatures] = useState(plan.entitlements.features.join(', '));
  const [error, setError] = useState<unknown>(null);
  if (!editing)
    return (
      <>
        {plan.name}{' '}
        <button type="button" class="link" onClick={() => setEditing(true)} aria-label={`Edit ${plan.code}`}>
          Edit
        </button>
      </>
    );
  return (
    <form
      class="inline"
      onSubmit={(e) => {
        e.preventDefault();
        const list = features
          .split(',')
          .map((f) => f.trim())
          .filter(Boolean);
        call('patch', '/api/plans/{code}', {
          params: { code: plan.code },
          body: { name: name.trim(), entitlements: { ...plan.entitlements, features: list } },
        }).then(() => {
          setEditing(false);
          reload();
        }, setError);
      }}
    >
      <Field label={`Name of ${plan.code}`} name="name" value={name} required onInput={setName} />
      <Field label={`Features of ${plan.code}`} name="plan-features" value={features} onInput={setFeatures} />
      <button type="submit">Save</button>
      <button type="button" onClick={() => setEditing(false)}>
        Cancel
      </button>
      <ErrorNote error={error} />
    </form>
  );
}

function NewPlan({ onCreated }: { onCreated: () => void }) {
  const [code, setCode] = useState('');
  const [name, setName] = useState('');
  const [features, setFeatures] = useState('');
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      const list = features
        .split(',')
        .map((f) => f.trim())
        .filter(Boolean);
      await call('post', '/api/plans', { body: { code: code.trim(), name: name.trim(), entitlements: { features: list, limits: {} } } });
      setCode('');
      setName('');
      setFeatures('');
      onCreated();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <section aria-labelledby="new-plan-h">
      <h2 id="new-plan-h">New plan</h2>
      <form onSubmit={(e) => void submit(e)}>
        <Field label="Code (a-z, 0-9, - and _)" name="code" required value={code} onInput={setCode} />
        <Field label="Name" name="plan-name" required value={name} onInput={setName} />
        <Field label="Features (comma-separated)" name="features" value={features} onInput={setFeatures} />
        <ErrorNote error={error} />
        <button type="submit" class="primary">
          Create plan
        </button>
      </form>
    </section>
  );
}
