import type { RouteDef } from '../../src/http/route';
import request from 'supertest';
import { randomBytes } from 'node:crypto';
import {
  createCustomer,
  createPlan,
  createWebhookEndpoint,
  emitEvent,
  insertInvoice,
  planCode,
  PUBLIC_HOOK_URL,
  subscribe,
  type CreatedCustomer,
} from './factories';
import { insertEndpoint } from './delivery-fixtures';
import { bundleEvents, Instance } from './usage-bundles';
import { archivedEvent } from './usage-retention';
import type { TestApp } from './test-app';
import { SAME_ORIGIN } from './console-session';
import { CONSOLE_PAGES, consoleDistDir } from '../../src/modules/console/console-page';
import fs from 'node:fs';
import path from 'node:path';
import { writeArchive } from '../../src/modules/usage-retention/archive-files';

/** A file of the console's build, by extension. */
export function consoleAsset(ext: string): string {
  const dir = path.join(consoleDistDir()!, 'assets');
  const name = fs.readdirSync(dir).find((f) => f.endsWith(ext));
  if (!name) throw new Error(`no ${ext} file in ${dir}: build the console (npm run build -w console)`);
  return name;
}

export const routeName = (r: RouteDef) => `${r.method.toUpperCase()} ${r.path}`;

const fingerprint = () => `fp-${randomBytes(8).toString('hex')}`;
const licensed = new Set<string>();

/** The customer, subscribed once to a plan without an instance limit, so it has a license. */
async function withLicense(t: TestApp, customer?: CreatedCustomer): Promise<CreatedCustomer> {
  const c = customer ?? (await createCustomer(t));
  if (!licensed.has(c.id)) await subscribe(t, { customer: c });
  licensed.add(c.id);
  return c;
}

async function activated(t: TestApp, customer?: CreatedCustomer) {
  const c = await withLicense(t, customer);
  const fp = fingerprint();
  const res = await request(t.app).post('/api/licenses/activations').set('X-API-Key', c.apiKey).send({ fingerprint: fp });
  if (res.status !== 201) throw new Error(`activate: ${res.status} ${JSON.stringify(res.body)}`);
  return { c, fp };
}

/** A usage bundle of one event from an instance of the customer (licensed, activated with its instance key). */
async function bundleOf(t: TestApp, customer?: CreatedCustomer): Promise<{ c: CreatedCustomer; bundle: string }> {
  const c = await withLicense(t, customer);
  const instance = new Instance(c);
  await instance.activate(t);
  return { c, bundle: await instance.export(bundleEvents(1)) };
}

/**
 * An archive of `month` in the app's USAGE_ARCHIVE_DIR: two events of a fresh customer. Verify samples
 * use a month no partition will ever hold (verify then reads the files alone); restore samples a month
 * per test process (the restore makes its partition in the shared database).
 */
async function archivedMonth(t: TestApp, month: string): Promise<string> {
  const c = await createCustomer(t);
  const at = `${month}-15T00:00:00.000000Z`;
  const event = () => archivedEvent(c.id, at);
  await writeArchive(
    t.c.config.usage.archiveDir!,
    month,
    (async function* () {
      yield event();
      yield event();
    })(),
    new Date(),
  );
  return month;
}

/**
 * A valid request for each route: path parameters filled with fresh rows, and a body. `caller`: the
 * customer whose key will call a customer route, for the routes that need its own rows (a license
 * needs a subscription, a release an activation).
 */
export const samples: Record<string, (t: TestApp, caller?: CreatedCustomer) => Promise<{ path: string; body?: object; headers?: Record<string, string> }>> = {
  'GET /health': async () => ({ path: '/health' }),
  'GET /ready': async () => ({ path: '/ready' }),
  'POST /api/customers': async () => ({ path: '/api/customers', body: { email: `m-${Date.now()}-${Math.random()}@example.com`, company_name: 'M' } }),
  'GET /api/customers': async () => ({ path: '/api/customers' }),
  'GET /api/customers/:id': async (t) => ({ path: `/api/customers/${(await createCustomer(t)).id}` }),
  'PATCH /api/customers/:id': async (t) => ({ path: `/api/customers/${(await createCustomer(t)).id}`, body: { company_name: 'New name' } }),
  'DELETE /api/customers/:id': async (t) => ({ path: `/api/customers/${(await createCustomer(t)).id}` }),
  'POST /api/customers/:id/keys': async (t) => ({ path: `/api/customers/${(await createCustomer(t)).id}/keys`, body: {} }),
  'POST /api/keys/rotate': async (t) => ({ path: '/api/keys/rotate', body: { grace_period_seconds: 0, customer_ids: [(await createCustomer(t)).id] } }),
  'GET /api/customers/:id/keys': async (t) => ({ path: `/api/customers/${(await createCustomer(t)).id}/keys` }),
  'DELETE /api/customers/:id/keys/:keyId': async (t) => {
    const c = await createCustomer(t);
    return { path: `/api/customers/${c.id}/keys/${c.keyId}` };
  },
  'GET /api/audit': async () => ({ path: '/api/audit' }),
  'GET /api/me': async () => ({ path: '/api/me' }),
  'POST /api/usage': async () => ({ path: '/api/usage', body: { metric: 'api_calls', quantity: 1, idempotency_key: `m-${Date.now()}-${Math.random()}` } }),
  'GET /api/usage': async () => ({ path: '/api/usage' }),
  // Without a caller the bundle can be no one's: a body of the right shape only.
  'POST /api/usage/bundles': async (t, caller) => ({ path: '/api/usage/bundles', body: { bundle: caller ? (await bundleOf(t, caller)).bundle : 'a.b.c' } }),
  'POST /api/customers/:id/usage-bundles': async (t) => {
    const { c, bundle } = await bundleOf(t);
    return { path: `/api/customers/${c.id}/usage-bundles`, body: { bundle } };
  },
  'GET /api/customers/:id/usage': async (t) => ({ path: `/api/customers/${(await createCustomer(t)).id}/usage` }),
  'GET /api/reports/usage': async () => ({ path: '/api/reports/usage' }),
  'GET /api/reports/forwarding': async () => ({ path: '/api/reports/forwarding' }),
  'POST /api/reports/forwarding/retry': async () => ({ path: '/api/reports/forwarding/retry', body: { event_ids: ['01900000-0000-7000-8000-000000000000'] } }),
  'GET /api/reports/usage/late': async () => ({ path: '/api/reports/usage/late' }),
  'POST /api/reports/usage/late/retry': async () => ({ path: '/api/reports/usage/late/retry', body: { ids: ['01900000-0000-7000-8000-000000000000'] } }),
  'POST /api/plans': async () => ({ path: '/api/plans', body: { code: planCode(), name: 'P', entitlements: { features: [], limits: {} } } }),
  'GET /api/plans': async () => ({ path: '/api/plans' }),
  'GET /api/plans/:code': async (t) => ({ path: `/api/plans/${await createPlan(t)}` }),
  'PATCH /api/plans/:code': async (t) => ({ path: `/api/plans/${await createPlan(t)}`, body: { name: 'Renamed' } }),
  'DELETE /api/plans/:code': async (t) => ({ path: `/api/plans/${await createPlan(t)}` }),
  'POST /api/customers/:id/subscriptions': async (t) => ({
    path: `/api/customers/${(await createCustomer(t)).id}/subscriptions`,
    body: { plan: await createPlan(t) },
  }),
  'GET /api/customers/:id/subscriptions': async (t) => ({ path: `/api/customers/${(await createCustomer(t)).id}/subscriptions` }),
  'PATCH /api/customers/:id/subscriptions/:subscriptionId': async (t) => {
    const s = await subscribe(t);
    return { path: `/api/customers/${s.customerId}/subscriptions/${s.id}`, body: { plan: await createPlan(t) } };
  },
  'DELETE /api/customers/:id/subscriptions/:subscriptionId': async (t) => {
    const s = await subscribe(t);
    return { path: `/api/customers/${s.customerId}/subscriptions/${s.id}` };
  },
  'GET /api/subscriptions': async () => ({ path: '/api/subscriptions' }),
  'POST /api/webhooks/stripe': async () => ({
    path: '/api/webhooks/stripe',
    body: { id: 'evt_1', object: 'event', type: 'ping', created: 1, data: { object: {} } },
  }),
  'GET /api/reports/webhooks': async () => ({ path: '/api/reports/webhooks' }),
  'POST /api/stripe/reconcile': async () => ({ path: '/api/stripe/reconcile' }),
  'GET /metrics': async () => ({ path: '/metrics' }),
  'GET /api/reports/overview': async () => ({ path: '/api/reports/overview' }),
  'GET /api/reports/preflight': async () => ({ path: '/api/reports/preflight' }),
  // Sign-in is public, but only from the console's own origin.
  'POST /api/console/session': async (t) => ({ path: '/api/console/session', body: { token: t.adminToken }, headers: { ...SAME_ORIGIN } }),
  'GET /api/console/session': async () => ({ path: '/api/console/session' }),
  'DELETE /api/console/session': async () => ({ path: '/api/console/session' }),
  // The console's pages (one page for every console URL) and a file of its build (npm test builds it first).
  ...Object.fromEntries(CONSOLE_PAGES.map(([p]) => [`GET ${p}`, async () => ({ path: p.replace(':id', '01900000-0000-7000-8000-000000000000') })])),
  'GET /console/assets/:file': async () => ({ path: `/console/assets/${consoleAsset('.js')}` }),
  'GET /openapi.json': async () => ({ path: '/openapi.json' }),
  'GET /docs': async () => ({ path: '/docs' }),
  'GET /docs/assets/:file': async () => ({ path: '/docs/assets/docs-init.js' }),
  'GET /.well-known/jwks.json': async () => ({ path: '/.well-known/jwks.json' }),
  'GET /.well-known/license-keys': async () => ({ path: '/.well-known/license-keys' }),
  'GET /api/licenses': async (t, caller) => {
    if (caller) await withLicense(t, caller);
    return { path: '/api/licenses' };
  },
  'POST /api/licenses/activations': async (t, caller) => {
    if (caller) await withLicense(t, caller);
    return { path: '/api/licenses/activations', body: { fingerprint: fingerprint(), name: 'node 1' } };
  },
  'GET /api/licenses/activations': async () => ({ path: '/api/licenses/activations' }),
  'DELETE /api/licenses/activations/:fingerprint': async (t, caller) => {
    if (!caller) return { path: `/api/licenses/activations/${fingerprint()}` };
    return { path: `/api/licenses/activations/${(await activated(t, caller)).fp}` };
  },
  'GET /api/customers/:id/activations': async (t) => ({ path: `/api/customers/${(await createCustomer(t)).id}/activations` }),
  'GET /api/customers/:id/license': async (t) => ({ path: `/api/customers/${(await withLicense(t)).id}/license` }),
  'DELETE /api/customers/:id/activations/:fingerprint': async (t) => {
    const { c, fp } = await activated(t);
    return { path: `/api/customers/${c.id}/activations/${fp}` };
  },
  'POST /api/customers/:id/licenses': async (t) => ({
    path: `/api/customers/${(await withLicense(t)).id}/licenses`,
    body: { fingerprint: fingerprint(), ttl: '30d' },
  }),
  'GET /api/events': async () => ({ path: '/api/events' }),
  'GET /api/events/:id': async (t) => ({ path: `/api/events/${await emitEvent(t)}` }),
  'POST /api/webhook-endpoints': async () => ({ path: '/api/webhook-endpoints', body: { url: PUBLIC_HOOK_URL, events: ['license.expiring_soon'] } }),
  'GET /api/webhook-endpoints': async () => ({ path: '/api/webhook-endpoints' }),
  'GET /api/webhook-endpoints/:id': async (t) => ({ path: `/api/webhook-endpoints/${(await createWebhookEndpoint(t)).id}` }),
  'PATCH /api/webhook-endpoints/:id': async (t) => ({
    path: `/api/webhook-endpoints/${(await createWebhookEndpoint(t)).id}`,
    body: { description: 'Renamed' },
  }),
  'DELETE /api/webhook-endpoints/:id': async (t) => ({ path: `/api/webhook-endpoints/${(await createWebhookEndpoint(t)).id}` }),
  'POST /api/webhook-endpoints/:id/rotate-secret': async (t) => ({
    path: `/api/webhook-endpoints/${(await createWebhookEndpoint(t)).id}/rotate-secret`,
    body: { grace_period: '1h' },
  }),
  // Disabled (so other files' events make no deliveries to them); nothing listens on port 9: the test attempt fails at once, answered 200.
  'POST /api/webhook-endpoints/:id/test': async (t) => ({
    path: `/api/webhook-endpoints/${(await insertEndpoint(t, { url: 'http://127.0.0.1:9/', disabled: true })).id}/test`,
  }),
  'GET /api/webhook-endpoints/:id/deliveries': async (t) => ({
    path: `/api/webhook-endpoints/${(await insertEndpoint(t, { url: 'http://127.0.0.1:9/', disabled: true })).id}/deliveries`,
  }),
  'POST /api/events/:id/resend': async (t) => ({ path: `/api/events/${await emitEvent(t)}/resend`, body: {} }),
  'GET /api/customers/:id/entitlements': async (t) => ({ path: `/api/customers/${(await createCustomer(t)).id}/entitlements` }),
  'PUT /api/customers/:id/entitlements': async (t) => ({
    path: `/api/customers/${(await createCustomer(t)).id}/entitlements`,
    body: { features: { add: ['beta'] }, limits: { projects: 5 }, instances: 3, note: 'pilot' },
  }),
  'DELETE /api/customers/:id/entitlements': async (t) => {
    const c = await createCustomer(t);
    const res = await request(t.app)
      .put(`/api/customers/${c.id}/entitlements`)
      .set('Authorization', `Bearer ${t.adminToken}`)
      .send({ features: { add: ['beta'] } });
    if (res.status !== 200) throw new Error(`overrides: ${res.status} ${JSON.stringify(res.body)}`);
    return { path: `/api/customers/${c.id}/entitlements` };
  },
  // Stripe off in the shared route tests: this one answers its declared 409 STRIPE_DISABLED there (stripeOnly, below);
  // tests/api/billing-portal.test.ts checks its success against the declared schema with a fake Stripe.
  'POST /api/billing/portal-session': async () => ({ path: '/api/billing/portal-session', body: { return_url: 'https://vendor.example/billing' } }),
  'GET /api/invoices/upcoming': async (t, caller) => {
    if (caller) await withLicense(t, caller);
    return { path: '/api/invoices/upcoming' };
  },
  'GET /api/invoices': async (t, caller) => {
    if (caller) await insertInvoice(t, caller.id, { status: 'paid' });
    return { path: '/api/invoices?limit=5' };
  },
  'GET /api/invoices/:id': async (t, caller) => ({ path: `/api/invoices/${(await insertInvoice(t, (caller ?? (await createCustomer(t))).id)).id}` }),
  'GET /api/usage/archives': async () => ({ path: '/api/usage/archives' }),
  'POST /api/usage/archives/:month/verify': async (t) => ({ path: `/api/usage/archives/${await archivedMonth(t, '1899-01')}/verify` }),
  'POST /api/usage/archives/:month/restore': async (t) => ({
    path: `/api/usage/archives/${await archivedMonth(t, `${1970 + (process.pid % 30)}-01`)}/restore`,
    body: {},
  }),
  'GET /api/customers/:id/invoices': async (t) => {
    const c = await createCustomer(t);
    await insertInvoice(t, c.id, { status: 'draft' });
    return { path: `/api/customers/${c.id}/invoices` };
  },
};

/** Routes that need Stripe: with Stripe off their sample request answers 409 STRIPE_DISABLED (declared), not a success. */
const STRIPE_ONLY = new Set(['POST /api/billing/portal-session']);

/** Whether this route, in this app, can only answer STRIPE_DISABLED to its sample request. */
export const stripeOnly = (t: TestApp, r: RouteDef) => !t.c.stripe.enabled && STRIPE_ONLY.has(routeName(r));
