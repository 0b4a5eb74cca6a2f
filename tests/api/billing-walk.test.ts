/**
 * Issue 22's check, as an instance makes it: with its customer's key and the SDK, over HTTP, against a
 * fake Stripe whose objects have the fields of Stripe's published fixtures. Two customers' invoices go
 * through their lives in Stripe; every invoice event is delivered twice, shuffled, four at a time;
 * then each instance walks the three routes (invoices, this period so far, the portal), and tries to
 * reach the other customer's invoices and to send the portal to hosts that are not the vendor's.
 */
import { randomBytes } from 'node:crypto';
import { BillingApiError, BillingClient } from '../../packages/client';
import { createPlan, subscribe } from '../helpers/factories';
import { startFakeStripe, type FakeEvent, type FakeInvoiceStatus, type FakeStripe } from '../helpers/fake-stripe';
import { serve, stop, type Served } from '../helpers/served-app';
import { deliverEvent, WEBHOOK_TEST_SECRET } from '../helpers/stripe-app';

let fake: FakeStripe;
let s: Served;
const clients: BillingClient[] = [];

beforeAll(async () => {
  fake = await startFakeStripe();
  s = await serve({
    STRIPE_SECRET_KEY: 'sk_test_billingwalk',
    STRIPE_API_BASE: fake.url,
    STRIPE_WEBHOOK_SECRET: WEBHOOK_TEST_SECRET,
    FORWARDER_ENABLED: 'false',
    BILLING_PORTAL_RETURN_URLS: 'https://vendor.example/billing',
  });
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await stop(s);
  await fake.close();
});

const hex = () => randomBytes(5).toString('hex');
const instance = (apiKey: string) => {
  const c = new BillingClient({ baseUrl: s.url, apiKey, maxRetries: 0 });
  clients.push(c);
  return c;
};

const deliver = async (e: FakeEvent) => (await deliverEvent(s.server, e)).status;

/** A subscribed customer, on a plan with a base price (49.00) and a metered price (0.5 cent per api call). */
async function customerInStripe() {
  const base = `price_${hex()}`;
  const metered = `price_${hex()}`;
  const meter = `mtr_${hex()}`;
  fake.meters.set(meter, { id: meter, object: 'billing.meter', event_name: 'api_calls' });
  fake.prices.set(base, {
    id: base,
    object: 'price',
    currency: 'usd',
    unit_amount: 4900,
    unit_amount_decimal: '4900',
    nickname: 'Pro',
    recurring: { usage_type: 'licensed' },
  });
  fake.prices.set(metered, {
    id: metered,
    object: 'price',
    currency: 'usd',
    unit_amount: null,
    unit_amount_decimal: '0.5',
    nickname: 'API calls',
    recurring: { usage_type: 'metered', meter },
  });
  const sub = await subscribe(s.t, { plan: await createPlan(s.t, { stripe_price_id: base, metered_prices: { api_calls: metered } }) });
  const row = (await s.t.db('customers').where({ id: sub.customerId }).first())!;
  return { ...sub, stripeCustomerId: row.stripe_customer_id!, stripeSubscriptionId: sub.body.stripe_subscription_id as string, base, metered };
}
type Walker = Awaited<ReturnType<typeof customerInStripe>>;

/** An invoice taken through `path` in Stripe, with the event Stripe sends at each step (a copy of the invoice then). */
function lifeOf(c: Walker, created: number, path: FakeInvoiceStatus[]): { id: string; events: FakeEvent[] } {
  const inv = fake.createInvoice({
    customer: c.stripeCustomerId,
    subscription: c.stripeSubscriptionId,
    created,
    lines: [
      { description: '1 × Pro', quantity: 1, amount: 4900, price: c.base },
      { description: '900 × API calls', quantityDecimal: '900', amount: 450, price: c.metered },
    ],
  });
  const snap = () => structuredClone(fake.invoices.get(inv.id)!);
  const events = [fake.event('invoice.created', snap())];
  const said: Record<FakeInvoiceStatus, string[]> = {
    draft: [],
    open: ['invoice.finalized'],
    paid: ['invoice.paid'],
    void: ['invoice.voided'],
    uncollectible: ['invoice.marked_uncollectible'],
  };
  let last = 'draft';
  for (const status of path) {
    const before = snap();
    fake.setInvoiceStatus(inv.id, status);
    const types = status === 'open' && last === 'open' ? ['invoice.payment_failed'] : said[status];
    events.push(...types.map((type) => fake.event(type, snap())));
    // Stripe's invoice.updated, carrying a state that is older by the time it arrives.
    events.push(fake.event('invoice.updated', before));
    last = status;
  }
  return { id: inv.id, events };
}

function shuffle<T>(xs: T[]): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

describe('an instance walks its customer’s billing', () => {
  let a: Walker;
  let b: Walker;
  const lives: Record<string, { id: string; events: FakeEvent[] }> = {};

  beforeAll(async () => {
    a = await customerInStripe();
    b = await customerInStripe();
    const t0 = Math.floor(Date.now() / 1000) - 40 * 86400;
    lives.paid = lifeOf(a, t0, ['open', 'paid']);
    lives.failing = lifeOf(a, t0 + 86400, ['open', 'open']);
    lives.draft = lifeOf(a, t0 + 2 * 86400, []);
    lives.voided = lifeOf(a, t0 + 3 * 86400, ['open', 'void']);
    lives.uncollectible = lifeOf(a, t0 + 4 * 86400, ['open', 'uncollectible']);
    lives.others = lifeOf(b, t0 + 5 * 86400, ['open', 'paid']);
    const all = Object.values(lives).flatMap((l) => l.events);
    const deliveries = shuffle([...all, ...all]);
    const statuses: number[] = [];
    for (let i = 0; i < deliveries.length; i += 4) statuses.push(...(await Promise.all(deliveries.slice(i, i + 4).map(deliver))));
    expect(statuses.filter((st) => st !== 200)).toEqual([]);
    // This period so far: 1,200 api calls Stripe holds for A's meter.
    fake.held.set(`mev_${hex()}`, {
      identifier: `walk-${hex()}`,
      event_name: 'api_calls',
      payload: { stripe_customer_id: a.stripeCustomerId, value: '1200' },
      timestamp: new Date().toISOString(),
      via: 'stream',
    });
  });

  test('its invoices are Stripe’s final states, newest first, without the draft, whatever order the events came in', async () => {
    const page = await instance(a.customer.apiKey).invoices({ limit: 100 });
    const want = ['uncollectible', 'voided', 'failing', 'paid'].map((k) => fake.invoices.get(lives[k]!.id)!);
    expect(page.nextCursor).toBeNull();
    expect(page.data.map((i) => i.stripe_invoice_id)).toEqual(want.map((w) => w.id));
    expect(page.data.map((i) => [i.status, i.number, i.amount_due, i.amount_paid, i.amount_remaining, i.total, i.hosted_invoice_url, i.invoice_pdf])).toEqual(
      want.map((w) => [w.status, w.number, w.amount_due, w.amount_paid, w.amount_remaining, w.total, w.hosted_invoice_url, w.invoice_pdf]),
    );
    expect(page.data.map((i) => i.status)).toEqual(['uncollectible', 'void', 'open', 'paid']);
    expect(page.data[3]!.lines.map((l) => [l.metric, l.quantity, l.amount])).toEqual([
      [null, 1, 4900],
      ['api_calls', 900, 450],
    ]);
  });

  test('it reads one of its invoices by either id; the other customer’s and its own draft are 404s, like an id that does not exist', async () => {
    const mine = instance(a.customer.apiKey);
    const paid = await mine.invoice(lives.paid!.id);
    expect((await mine.invoice(paid.id)).stripe_invoice_id).toBe(lives.paid!.id);
    const theirs = await instance(b.customer.apiKey).invoice(lives.others!.id);
    expect(theirs.status).toBe('paid');
    for (const id of [theirs.id, lives.others!.id, lives.draft!.id, 'in_doesnotexist']) {
      const err = await mine.invoice(id).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BillingApiError);
      expect(err).toMatchObject({ status: 404, code: 'NOT_FOUND' });
    }
    expect((await instance(b.customer.apiKey).invoices()).data.map((i) => i.stripe_invoice_id)).toEqual([lives.others!.id]);
  });

  test('this period so far is Stripe’s preview, lines per metric; asked again within the window, Stripe is not asked again', async () => {
    const before = fake.previewCalls().length;
    const upcoming = await instance(a.customer.apiKey).upcomingInvoice();
    expect(upcoming).toMatchObject({
      estimate: false,
      source: 'stripe',
      customer_id: a.customerId,
      subscription_id: a.id,
      currency: 'usd',
      subtotal: 5500,
      total: 5500,
    });
    expect(upcoming.lines.map((l) => [l.metric, l.quantity, l.amount, l.price])).toEqual([
      [null, 1, 4900, a.base],
      ['api_calls', 1200, 600, a.metered],
    ]);
    expect(await instance(a.customer.apiKey).upcomingInvoice()).toEqual(upcoming);
    expect(fake.previewCalls().length).toBe(before + 1);
    expect(fake.previewCalls().at(-1)!.body).toMatchObject({ customer: a.stripeCustomerId, subscription: a.stripeSubscriptionId });
  });

  test('the portal goes back only to the vendor’s page, and each key only ever opens its own customer’s portal', async () => {
    const sessions = fake.portalSessions.length;
    for (const evil of [
      'https://vendor.example.evil.test/billing',
      'https://vendor.example@evil.test/billing',
      '//evil.test/billing',
      'http://vendor.example/billing',
      'https://vendor.example/billing/%2e%2e/admin',
      'https://vendor.example/billing-evil',
      'https://vendor%2eexample/billing',
    ]) {
      const err = await instance(a.customer.apiKey)
        .billingPortalUrl(evil)
        .catch((e: unknown) => e);
      expect([evil, err]).toMatchObject([evil, { status: 422, code: 'VALIDATION_FAILED', details: [{ path: 'return_url' }] }]);
    }
    expect(fake.portalSessions.length).toBe(sessions);
    const urlA = await instance(a.customer.apiKey).billingPortalUrl('https://vendor.example/billing/account');
    const urlB = await instance(b.customer.apiKey).billingPortalUrl('https://vendor.example/billing');
    expect(fake.portalSessions.slice(sessions).map((x) => [x.url, x.customer, x.return_url])).toEqual([
      [urlA, a.stripeCustomerId, 'https://vendor.example/billing/account'],
      [urlB, b.stripeCustomerId, 'https://vendor.example/billing'],
    ]);
    expect(s.t.logs.join('').includes(urlA)).toBe(false);
  });
});
