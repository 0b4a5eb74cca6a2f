/**
 * BillingClient.billingPortalUrl() and upcomingInvoice() against the real service served over HTTP,
 * with a fake Stripe behind it: the URL is Stripe's session's (a new one each time), refusals come
 * back as BillingApiError, and the upcoming invoice is the service's answer as typed from its document.
 */
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { BillingApiError, BillingClient, type UpcomingInvoice } from '../../packages/client';
import { createCustomer, createPlan, subscribe, type CreatedCustomer } from '../helpers/factories';
import { startFakeStripe, type FakeStripe } from '../helpers/fake-stripe';
import { serve, stop, type Served } from '../helpers/served-app';

let fake: FakeStripe;
let s: Served;
const open: BillingClient[] = [];

beforeAll(async () => {
  fake = await startFakeStripe();
  s = await serve({
    STRIPE_SECRET_KEY: 'sk_test_clientportal',
    STRIPE_API_BASE: fake.url,
    FORWARDER_ENABLED: 'false',
    BILLING_PORTAL_RETURN_URLS: 'https://vendor.example/billing',
  });
});
afterAll(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
  await stop(s);
  await fake.close();
});

const client = (c: CreatedCustomer) => {
  const b = new BillingClient({ baseUrl: s.url, apiKey: c.apiKey, maxRetries: 0 });
  open.push(b);
  return b;
};

const billingPortalUrl = (b: BillingClient) => b.billingPortalUrl('https://vendor.example/billing/done');

describe('billingPortalUrl', () => {
  test('when asked twice, then each answer is the URL of a new Stripe session for the key’s customer (nothing is cached)', async () => {
    const c = await createCustomer(s.t);
    const billing = client(c);
    const first = await billingPortalUrl(billing);
    const second = await billingPortalUrl(billing);
    expect(first).not.toBe(second);
    const stripeId = (await s.t.db('customers').where({ id: c.id }).first())!.stripe_customer_id;
    expect(fake.portalSessions.slice(-2).map((x) => [x.url, x.customer, x.return_url])).toEqual([
      [first, stripeId, 'https://vendor.example/billing/done'],
      [second, stripeId, 'https://vendor.example/billing/done'],
    ]);
  });

  test('when the return URL is not allowed, then BillingApiError 422 VALIDATION_FAILED naming return_url; an allowed one works (control)', async () => {
    const billing = client(await createCustomer(s.t));
    const err = await billing.billingPortalUrl('https://evil.test/billing').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BillingApiError);
    expect(err).toMatchObject({ status: 422, code: 'VALIDATION_FAILED', details: [{ path: 'return_url' }] });
    await expect(billing.billingPortalUrl('https://vendor.example/billing')).resolves.toMatch(/^https:\/\/billing\.stripe\.com\//);
  });
});

describe('upcomingInvoice', () => {
  test('when the customer has a subscription in Stripe, then the answer is the service’s, as typed', async () => {
    const price = `price_${randomBytes(5).toString('hex')}`;
    fake.prices.set(price, { id: price, object: 'price', currency: 'usd', unit_amount: 2500, unit_amount_decimal: '2500', recurring: { interval: 'month' } });
    const sub = await subscribe(s.t, { plan: await createPlan(s.t, { stripe_price_id: price }) });
    const invoice: UpcomingInvoice = await client(sub.customer).upcomingInvoice();
    expect(invoice).toMatchObject({ estimate: false, source: 'stripe', customer_id: sub.customerId, subscription_id: sub.id, currency: 'usd', total: 2500 });
    const http = await request(s.t.app).get('/api/invoices/upcoming').set('X-API-Key', sub.customer.apiKey);
    // Within the cache window: the very same answer.
    expect(http.body).toEqual(invoice);
  });

  test('when the customer has no subscription, then BillingApiError 404 NOT_FOUND', async () => {
    await expect(client(await createCustomer(s.t)).upcomingInvoice()).rejects.toMatchObject({ status: 404, code: 'NOT_FOUND' });
  });
});
