import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { cli, serviceJson, startService, type Service } from './cli-harness';

/** billing-admin customers entitlements get|set|clear, and plans' overage and thresholds, against a real service. */
let s: Service;
let env: Record<string, string>;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-cli-deal-'));
beforeAll(async () => {
  s = await startService({ USAGE_METRICS: 'api_calls,storage_gb' });
  env = { BILLING_API_URL: s.url, ADMIN_API_TOKEN: s.t.adminToken };
});
afterAll(async () => {
  await s.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const code = () => `deal-${randomBytes(4).toString('hex')}`;

async function ok(argv: string[], stdin?: string) {
  const r = await cli(argv, { env, stdin });
  if (r.code !== 0) throw new Error(`${argv.join(' ')}: exit ${r.code}\n${r.stderr}`);
  return r;
}

/** A customer subscribed to a new plan (projects 10, api_calls 1000, instances 5, features sso and export). */
async function dealCustomer(): Promise<{ id: string; plan: string }> {
  const plan = code();
  await ok([
    'plans',
    'create',
    '--code',
    plan,
    '--name',
    'Pro',
    '--feature',
    'sso',
    '--feature',
    'export',
    '--limit',
    'projects=10',
    '--limit',
    'api_calls=1000',
    '--limit',
    'instances=5',
  ]);
  const id = JSON.parse(
    (await ok(['--json', 'customers', 'create', '--email', `deal-${randomBytes(4).toString('hex')}@example.com`, '--company', 'Acme'])).stdout,
  ).customer.id;
  await ok(['subscriptions', 'create', id, '--plan', plan]);
  return { id, plan };
}

describe('billing-admin customers entitlements', () => {
  test('when overrides are set with flags, then the service holds exactly them, and get shows the deal (--json: the service’s JSON)', async () => {
    const c = await dealCustomer();
    const set = await ok([
      'customers',
      'entitlements',
      'set',
      c.id,
      '--add-feature',
      'beta',
      '--remove-feature',
      'export',
      '--limit',
      'projects=50',
      '--limit',
      'exports=unlimited',
      '--instances',
      'unlimited',
      '--overage',
      'api_calls=1.25',
      '--threshold',
      '90',
      '--threshold',
      '50',
      '--note',
      'pilot',
      '--expires-at',
      '2099-01-01',
    ]);
    expect(set.stderr).toMatch(/Overrides of customer .* replaced/);
    const row = await s.t.db('customer_entitlement_overrides').where({ customer_id: c.id }).first();
    expect(row).toMatchObject({
      terms: {
        features: { add: ['beta'], remove: ['export'] },
        limits: { projects: 50, exports: null },
        instances: null,
        overage: { api_calls: 1.25 },
        thresholds: [50, 90],
      },
      note: 'pilot',
      expires_at: new Date('2099-01-01T00:00:00Z'),
    });

    const json = await ok(['--json', 'customers', 'entitlements', 'get', c.id]);
    expect(JSON.parse(json.stdout)).toEqual(await serviceJson(s, `/api/customers/${c.id}/entitlements`));

    const shown = await ok(['customers', 'entitlements', 'get', c.id]);
    expect(shown.stdout).toContain(`plan          ${c.plan} (Pro)`);
    expect(shown.stdout).toMatch(/overrides +apply\n +features +\+beta -export\n/);
    expect(shown.stdout).toMatch(/ +instances +unlimited\n/);
    expect(shown.stdout).toMatch(
      /effective +what applies now\n +features +beta, sso\n +limits +projects=50, api_calls=1000, instances=unlimited, exports=unlimited\n/,
    );
    expect(shown.stdout).toMatch(/\nMETRIC +ALLOWANCE +USED +PERCENT +CROSSED +OVERAGE +BLOCKS AT +STATE\napi_calls +1000 +0 +0% +- +1\.25 +1250 +ok\n/);
  });

  test('when set reads --file (or stdin) with flags too, then the flags override the file; set replaces earlier overrides', async () => {
    const c = await dealCustomer();
    await ok(['customers', 'entitlements', 'set', c.id, '--instances', '9']);
    const file = path.join(dir, 'deal.json');
    fs.writeFileSync(file, JSON.stringify({ features: { add: ['beta'] }, limits: { projects: 20 }, note: 'from the file' }));
    await ok(['customers', 'entitlements', 'set', c.id, '--file', file, '--limit', 'api_calls=2000', '--note', 'from the flag']);
    const row = (await s.t.db('customer_entitlement_overrides').where({ customer_id: c.id }).first())!;
    expect(row.terms).toEqual({ features: { add: ['beta'], remove: [] }, limits: { projects: 20, api_calls: 2000 }, overage: {} });
    expect(row.note).toBe('from the flag');

    await ok(['customers', 'entitlements', 'set', c.id, '--file', '-'], JSON.stringify({ instances: 3 }));
    expect((await s.t.db('customer_entitlement_overrides').where({ customer_id: c.id }).first())!.terms).toMatchObject({ instances: 3, limits: {} });
  });

  test('when overrides are cleared, then the plan alone applies; clearing again is a 404 (exit 1)', async () => {
    const c = await dealCustomer();
    await ok(['customers', 'entitlements', 'set', c.id, '--add-feature', 'beta']);
    const cleared = await ok(['customers', 'entitlements', 'clear', c.id]);
    expect(cleared.stderr).toMatch(/cleared: its plan alone applies/);
    expect(cleared.stdout).toMatch(/overrides +none\n/);
    expect(await s.t.db('customer_entitlement_overrides').where({ customer_id: c.id })).toHaveLength(0);
    const again = await cli(['customers', 'entitlements', 'clear', c.id], { env });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/404 NOT_FOUND/);
  });

  test('when a value is refused by the service, then exit 2 naming the field and nothing is stored; a malformed flag is exit 64 before any request', async () => {
    const c = await dealCustomer();
    const refused = await cli(['customers', 'entitlements', 'set', c.id, '--threshold', '0', '--overage', 'api_calls=3.5'], { env });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/422 VALIDATION_FAILED/);
    expect(refused.stderr).toMatch(/- thresholds\.0: a threshold is a percentage from 1 to 1000/);
    expect(refused.stderr).toMatch(/- overage\.api_calls: a tolerance is a multiple of the allowance between 1\.1 and 3/);
    const noAllowance = await cli(['customers', 'entitlements', 'set', c.id, '--overage', 'storage_gb=allow'], { env });
    expect([noAllowance.code, noAllowance.stderr]).toEqual([2, expect.stringMatching(/- overage\.storage_gb: "storage_gb" has no allowance/)]);
    expect(await s.t.db('customer_entitlement_overrides').where({ customer_id: c.id })).toHaveLength(0);

    for (const argv of [
      ['--instances', 'many'],
      ['--overage', 'api_calls=fast'],
      ['--overage', 'api_calls'],
      ['--threshold', 'eighty'],
      ['--limit', 'projects=lots'],
      ['--expires-at', 'next week'],
      [],
    ]) {
      const r = await cli(['customers', 'entitlements', 'set', c.id, ...argv], { env });
      expect({ argv, code: r.code }).toEqual({ argv, code: 64 });
    }
    // Control: the same values, well formed.
    await ok(['customers', 'entitlements', 'set', c.id, '--threshold', '1', '--overage', 'api_calls=3', '--instances', '2']);
    expect(await s.t.db('customer_entitlement_overrides').where({ customer_id: c.id })).toHaveLength(1);
  });

  test('when the customer is deleted, then set is refused (exit 2, the customer is deleted) and get still shows its deal', async () => {
    const c = await dealCustomer();
    await ok(['customers', 'entitlements', 'set', c.id, '--add-feature', 'beta']);
    await ok(['customers', 'delete', c.id]);
    const r = await cli(['customers', 'entitlements', 'set', c.id, '--instances', '3'], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/- id: the customer is deleted/);
    expect((await ok(['customers', 'entitlements', 'get', c.id])).stdout).toMatch(/features +\+beta/);
  });
});

describe('billing-admin plans: --overage and --threshold', () => {
  test('when a plan is created and updated with overage policies and thresholds, then the plan holds them and show prints them', async () => {
    const plan = code();
    const created = await ok([
      '--json',
      'plans',
      'create',
      '--code',
      plan,
      '--name',
      'Metered',
      '--limit',
      'api_calls=1000',
      '--limit',
      'storage_gb=10',
      '--overage',
      'api_calls=1.5',
      '--overage',
      'storage_gb=allow',
      '--threshold',
      '100',
      '--threshold',
      '75',
    ]);
    expect(JSON.parse(created.stdout).plan.entitlements).toEqual({
      features: [],
      limits: { api_calls: 1000, storage_gb: 10 },
      overage: { api_calls: 1.5, storage_gb: 'allow' },
      thresholds: [75, 100],
    });

    // Flags apply on top of the current entitlements: the overage policies stay, the thresholds are replaced.
    await ok(['plans', 'update', plan, '--overage', 'api_calls=block', '--threshold', '50']);
    const shown = await ok(['plans', 'show', plan]);
    expect(shown.stdout).toMatch(/overage +api_calls=block, storage_gb=allow\n/);
    expect(shown.stdout).toMatch(/thresholds +50\n/);

    const refused = await cli(['plans', 'update', plan, '--overage', 'projects=allow'], { env });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/- entitlements\.overage\.projects: an overage policy is for a metered limit/);
    expect((await serviceJson(s, `/api/plans/${plan}`)) as object).toMatchObject({
      plan: { entitlements: { overage: { api_calls: 'block', storage_gb: 'allow' }, thresholds: [50] } },
    });
  });
});

describe('billing-admin plans: local pricing (--currency, --unit-amount, --unit-price, --no-local-pricing)', () => {
  test('when a plan is created and updated with local pricing flags, then the plan holds it, show prints it, and --no-local-pricing clears it', async () => {
    const plan = code();
    const created = await ok([
      '--json',
      'plans',
      'create',
      '--code',
      plan,
      '--name',
      'Priced',
      '--currency',
      'usd',
      '--unit-amount',
      '4900',
      '--unit-price',
      'api_calls=0.05',
    ]);
    expect(JSON.parse(created.stdout).plan.local_pricing).toEqual({ currency: 'usd', unit_amount: 4900, metered: { api_calls: '0.05' } });

    // On top of the current pricing: --unit-price adds a metric, --unit-amount replaces the base.
    await ok(['plans', 'update', plan, '--unit-price', 'storage_gb=12.5', '--unit-amount', '5900']);
    expect(((await serviceJson(s, `/api/plans/${plan}`)) as { plan: { local_pricing: unknown } }).plan.local_pricing).toEqual({
      currency: 'usd',
      unit_amount: 5900,
      metered: { api_calls: '0.05', storage_gb: '12.5' },
    });
    expect((await ok(['plans', 'show', plan])).stdout).toMatch(/local pricing +usd 5900, api_calls=0\.05, storage_gb=12\.5\n/);

    const refused = await cli(['plans', 'update', plan, '--unit-price', 'projects=1'], { env });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/- local_pricing\.metered\.projects: local pricing is per usage metric/);

    await ok(['plans', 'update', plan, '--no-local-pricing']);
    expect(((await serviceJson(s, `/api/plans/${plan}`)) as { plan: { local_pricing: unknown } }).plan.local_pricing).toBeNull();
    expect((await ok(['plans', 'show', plan])).stdout).toMatch(/local pricing +-\n/);
  });

  test('when local pricing flags are incomplete or malformed, then it exits 64 (usage) before sending anything; complete flags work (control)', async () => {
    const plan = code();
    for (const argv of [
      ['--unit-price', 'api_calls=0.05'],
      ['--currency', 'usd', '--unit-amount', '49.00'],
      ['--currency', 'usd', '--unit-amount', '100', '--unit-price', 'api_calls'],
    ]) {
      const r = await cli(['plans', 'create', '--code', plan, '--name', 'P', ...argv], { env });
      expect([argv.join(' '), r.code]).toEqual([argv.join(' '), 64]);
    }
    expect(await serviceJson(s, `/api/plans/${plan}`)).toMatchObject({ error: { code: 'NOT_FOUND' } });
    await ok(['plans', 'create', '--code', plan, '--name', 'P', '--currency', 'usd', '--unit-amount', '100']);
    const both = await cli(['plans', 'update', plan, '--no-local-pricing', '--unit-amount', '5'], { env });
    expect(both.code).toBe(64);
  });
});
