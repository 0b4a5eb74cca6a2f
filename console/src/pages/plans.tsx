import { useState } from 'preact/hooks';
import { call, type Answer } from '../api';
import { ConfirmButton, DataTable, ErrorNote, Field, Loading, useLoad, useSubmit } from '../components/ui';

export function Plans() {
  const plans = useLoad(() => call('get', '/api/plans'), []);
  return (
    <>
      <h1>Plans</h1>
      <ErrorNote error={plans.error} />
      {!plans.data && !plans.error && <Loading what="plans" />}
      {plans.data && (
        <DataTable
          label="Plans"
          rows={plans.data.data}
          rowKey={(p) => p.code}
          columns={[
            { head: 'Code', cell: (p) => <code>{p.code}</code> },
            { head: 'Name', cell: (p) => <PlanName plan={p} reload={plans.reload} /> },
            { head: 'Features', cell: (p) => p.entitlements.features.join(', ') || '—' },
            { head: 'Status', cell: (p) => p.status },
            {
              head: 'Actions',
              hideHead: true,
              cell: (p) =>
                p.status === 'active' && (
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
                ),
            },
          ]}
        />
      )}
      <NewPlan onCreated={plans.reload} />
    </>
  );
}

type Plan = Answer<'/api/plans', 'get'>['data'][number];

/** "sso, audit-log" as the API's list of features. */
const featureList = (text: string) =>
  text
    .split(',')
    .map((f) => f.trim())
    .filter(Boolean);

/** Edits a plan's name and features; its limits, overage and thresholds are sent back as they are. */
function PlanName({ plan, reload }: { plan: Plan; reload: () => void }) {
  const [editing, setEditing] = useState(false);
  const [name, setName] = useState(plan.name);
  const [features, setFeatures] = useState(plan.entitlements.features.join(', '));
  const save = useSubmit(async () => {
    await call('patch', '/api/plans/{code}', {
      params: { code: plan.code },
      body: { name: name.trim(), entitlements: { ...plan.entitlements, features: featureList(features) } },
    });
    setEditing(false);
    reload();
  });
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
    <form class="inline" onSubmit={save.onSubmit}>
      <Field label={`Name of ${plan.code}`} name="name" value={name} required onInput={setName} />
      <Field label={`Features of ${plan.code}`} name="plan-features" value={features} onInput={setFeatures} />
      <button type="submit" disabled={save.busy}>
        Save
      </button>
      <button type="button" onClick={() => setEditing(false)}>
        Cancel
      </button>
      <ErrorNote error={save.error} />
    </form>
  );
}

function NewPlan({ onCreated }: { onCreated: () => void }) {
  const [code, setCode] = useState('');
  const [name, setName] = useState('');
  const [features, setFeatures] = useState('');
  const submit = useSubmit(async () => {
    await call('post', '/api/plans', { body: { code: code.trim(), name: name.trim(), entitlements: { features: featureList(features), limits: {} } } });
    setCode('');
    setName('');
    setFeatures('');
    onCreated();
  });
  return (
    <section aria-labelledby="new-plan-h">
      <h2 id="new-plan-h">New plan</h2>
      <form onSubmit={submit.onSubmit}>
        <Field label="Code (a-z, 0-9, - and _)" name="code" required value={code} onInput={setCode} />
        <Field label="Name" name="plan-name" required value={name} onInput={setName} />
        <Field label="Features (comma-separated)" name="features" value={features} onInput={setFeatures} />
        <ErrorNote error={submit.error} />
        <button type="submit" class="primary" disabled={submit.busy}>
          Create plan
        </button>
      </form>
    </section>
  );
}
