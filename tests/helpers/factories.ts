import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { uuidv7 } from '../../src/lib/ids';
import type { EventType } from '../../src/modules/events/event-types';
import type { TestApp } from './test-app';

export const uniqueEmail = (tag = 'customer') => `${tag}-${randomBytes(6).toString('hex')}@example.com`;

export interface CreatedCustomer {
  id: string;
  email: string;
  apiKey: string;
  keyId: string;
}

/** Creates a customer through the API, as an admin would. */
export async function createCustomer(t: TestApp, overrides: { email?: string; company_name?: string } = {}): Promise<CreatedCustomer> {
  const email = overrides.email ?? uniqueEmail();
  const res = await request(t.app)
    .post('/api/customers')
    .set('Authorization', `Bearer ${t.adminToken}`)
    .send({ email, company_name: overrides.company_name ?? 'Acme Ltd' });
  if (res.status !== 201) throw new Error(`createCustomer: ${res.status} ${JSON.stringify(res.body)}`);
  return { id: res.body.customer.id, email, apiKey: res.body.api_key, keyId: res.body.key.id };
}

/** A customer linked to a Stripe customer id (as reconciliation or a subscription would link it). */
export async function createStripeCustomer(t: TestApp): Promise<CreatedCustomer & { stripeId: string }> {
  const c = await createCustomer(t);
  const stripeId = `cus_${randomBytes(7).toString('hex')}`;
  await t.db('customers').where({ id: c.id }).update({ stripe_customer_id: stripeId });
  return { ...c, stripeId };
}

/** Reports a batch of n events (quantities 1.5, 2.5, ...) and returns their ids, in order. */
export async function reportBatch(t: TestApp, c: CreatedCustomer, n: number, metric = 'api_calls', keyPrefix = 'b'): Promise<string[]> {
  const events = Array.from({ length: n }, (_, i) => ({ metric, quantity: `${i + 1}.5`, idempotency_key: `${keyPrefix}-${randomBytes(6).toString('hex')}` }));
  const res = await request(t.app).post('/api/usage').set('X-API-Key', c.apiKey).send({ events });
  if (res.status !== 201) throw new Error(`reportBatch: ${res.status} ${JSON.stringify(res.body)}`);
  return (res.body as { events: { id: string }[] }).events.map((e) => e.id);
}

export async function issueKey(t: TestApp, customerId: string, body: Record<string, unknown> = {}) {
  const res = await request(t.app).post(`/api/customers/${customerId}/keys`).set('Authorization', `Bearer ${t.adminToken}`).send(body);
  if (res.status !== 201) throw new Error(`issueKey: ${res.status} ${JSON.stringify(res.body)}`);
  return { apiKey: res.body.api_key as string, keyId: res.body.key.id as string, body: res.body };
}

export async function revokeKey(t: TestApp, customerId: string, keyId: string) {
  const res = await request(t.app).delete(`/api/customers/${customerId}/keys/${keyId}`).set('Authorization', `Bearer ${t.adminToken}`);
  if (res.status !== 200) throw new Error(`revokeKey: ${res.status} ${JSON.stringify(res.body)}`);
}

export async function deleteCustomer(t: TestApp, customerId: string) {
  const res = await request(t.app).delete(`/api/customers/${customerId}`).set('Authorization', `Bearer ${t.adminToken}`);
  if (res.status !== 200) throw new Error(`deleteCustomer: ${res.status} ${JSON.stringify(res.body)}`);
}

/** A key with the right shape and customer id but a secret that was never issued. */
export function wrongSecretKey(customerId: string): string {
  return `cust_${customerId}_${randomBytes(32).toString('base64url')}`;
}

export const planCode = (tag = 'plan') => `${tag}-${randomBytes(5).toString('hex')}`;

/** Creates a plan through the API; returns its code. */
export async function createPlan(t: TestApp, overrides: Record<string, unknown> = {}): Promise<string> {
  const code = (overrides.code as string) ?? planCode();
  const res = await request(t.app)
    .post('/api/plans')
    .set('Authorization', `Bearer ${t.adminToken}`)
    .send({ code, name: 'Pro', entitlements: { features: ['sso', 'audit-export'], limits: { projects: 10, api_calls: null } }, ...overrides });
  if (res.status !== 201) throw new Error(`createPlan: ${res.status} ${JSON.stringify(res.body)}`);
  return code;
}

/** A customer (new unless given) subscribed to a plan (new unless given), through the API. */
export async function subscribe(t: TestApp, opts: { customer?: CreatedCustomer; plan?: string; body?: Record<string, unknown> } = {}) {
  const customer = opts.customer ?? (await createCustomer(t));
  const plan = opts.plan ?? (await createPlan(t));
  const res = await request(t.app)
    .post(`/api/customers/${customer.id}/subscriptions`)
    .set('Authorization', `Bearer ${t.adminToken}`)
    .send({ plan, ...opts.body });
  if (res.status !== 201) throw new Error(`subscribe: ${res.status} ${JSON.stringify(res.body)}`);
  return { id: res.body.subscription.id as string, customerId: customer.id, customer, plan, body: res.body.subscription };
}

/** A public address that needs no DNS (tests never resolve names: there may be no resolver). */
export const PUBLIC_HOOK_URL = 'https://93.184.215.14/hook';

/** Creates a webhook endpoint through the API; returns it with its one-time secret. */
export async function createWebhookEndpoint(t: TestApp, body: { url?: string; events?: string[]; description?: string } = {}) {
  const res = await request(t.app)
    .post('/api/webhook-endpoints')
    .set('Authorization', `Bearer ${t.adminToken}`)
    .send({ url: PUBLIC_HOOK_URL, events: ['license.expiring_soon'], ...body });
  if (res.status !== 201) throw new Error(`createWebhookEndpoint: ${res.status} ${JSON.stringify(res.body)}`);
  return { id: res.body.webhook_endpoint.id as string, secret: res.body.secret as string, body: res.body };
}

/** Events as a business change would record them, in one transaction of their own; their ids, in order (default data: a note and their place). */
export async function emitEvents(
  t: TestApp,
  n: number,
  input: { type?: EventType; customerId?: string | null; data?: Record<string, unknown> } = {},
): Promise<string[]> {
  const events = Array.from({ length: n }, (_, i) => ({
    type: input.type ?? ('customer.updated' as const),
    customerId: input.customerId ?? null,
    data: input.data ?? { note: 'test', seq: i },
  }));
  return t.db.transaction((trx) => t.c.events.emit(trx, events));
}

/** One event, as emitEvents records it; its id. */
export const emitEvent = async (t: TestApp, input: Parameters<typeof emitEvents>[2] = {}): Promise<string> => (await emitEvents(t, 1, input))[0]!;

/**
 * An invoice held for a customer, written straight to the table (as the invoice webhooks would
 * leave it), for tests that need one without Stripe: finalized (open) unless told. Its id.
 */
export async function insertInvoice(
  t: TestApp,
  customerId: string,
  opts: { status?: 'draft' | 'open' | 'paid' | 'void' | 'uncollectible'; created?: Date; total?: number } = {},
): Promise<{ id: string; stripeInvoiceId: string }> {
  const status = opts.status ?? 'open';
  const total = opts.total ?? 4900;
  const created = opts.created ?? new Date(Math.floor(Date.now() / 1000) * 1000);
  const id = uuidv7();
  const stripeInvoiceId = `in_${randomBytes(12).toString('hex')}`;
  await t.db('invoices').insert({
    id,
    customer_id: customerId,
    stripe_invoice_id: stripeInvoiceId,
    subscription_id: null,
    stripe_subscription_id: null,
    number: status === 'draft' ? null : `TEST-${randomBytes(3).toString('hex')}`,
    status,
    currency: 'usd',
    amount_due: total,
    amount_paid: status === 'paid' ? total : 0,
    amount_remaining: status === 'paid' ? 0 : total,
    subtotal: total,
    tax: 0,
    total,
    period_start: created,
    period_end: created,
    due_date: null,
    hosted_invoice_url: status === 'draft' ? null : `https://invoice.stripe.com/i/acct_test/test_${stripeInvoiceId}`,
    invoice_pdf: null,
    lines: JSON.stringify([
      { description: '1 × Pro', quantity: 1, amount: total, price: null, metric: null, period: { start: created.toISOString(), end: created.toISOString() } },
    ]),
    stripe_created_at: created,
    finalized_at: status === 'draft' ? null : created,
    paid_at: status === 'paid' ? created : null,
    voided_at: status === 'void' ? created : null,
    marked_uncollectible_at: status === 'uncollectible' ? created : null,
    stripe_state_at: new Date(),
  });
  return { id, stripeInvoiceId };
}
