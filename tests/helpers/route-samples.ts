import type { RouteDef } from '../../src/http/route';
import { createCustomer, createPlan, planCode, subscribe } from './factories';
import type { TestApp } from './test-app';

export const routeName = (r: RouteDef) => `${r.method.toUpperCase()} ${r.path}`;

/** A valid request for each route: path parameters filled with fresh rows, and a body. */
export const samples: Record<string, (t: TestApp) => Promise<{ path: string; body?: object }>> = {
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
  'GET /api/customers/:id/usage': async (t) => ({ path: `/api/customers/${(await createCustomer(t)).id}/usage` }),
  'GET /api/reports/usage': async () => ({ path: '/api/reports/usage' }),
  'GET /api/reports/forwarding': async () => ({ path: '/api/reports/forwarding' }),
  'POST /api/reports/forwarding/retry': async () => ({ path: '/api/reports/forwarding/retry', body: { event_ids: ['01900000-0000-7000-8000-000000000000'] } }),
  'POST /api/plans': async () => ({ path: '/api/plans', body: { code: planCode(), name: 'P', entitlements: { features: [], limits: {} } } }),
  'GET /api/plans': async () => ({ path: '/api/plans' }),
  'GET /api/plans/:code': async (t) => ({ path: `/api/plans/${await createPlan(t)}` }),
  'PATCH /api/plans/:code': async (t) => ({ path: `/api/plans/${await createPlan(t)}`, body: { name: 'Renamed' } }),
  'DELETE /api/plans/:code': async (t) => ({ path: `/api/plans/${await createPlan(t)}` }),
  'POST /api/customers/:id/subscriptions': async (t) => ({ path: `/api/customers/${(await createCustomer(t)).id}/subscriptions`, body: { plan: await createPlan(t) } }),
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
  'POST /api/webhooks/stripe': async () => ({ path: '/api/webhooks/stripe', body: { id: 'evt_1', object: 'event', type: 'ping', created: 1, data: { object: {} } } }),
  'GET /api/reports/webhooks': async () => ({ path: '/api/reports/webhooks' }),
  'POST /api/stripe/reconcile': async () => ({ path: '/api/stripe/reconcile' }),
  'GET /metrics': async () => ({ path: '/metrics' }),
  'GET /openapi.json': async () => ({ path: '/openapi.json' }),
  'GET /docs': async () => ({ path: '/docs' }),
  'GET /docs/assets/:file': async () => ({ path: '/docs/assets/docs-init.js' }),
};

