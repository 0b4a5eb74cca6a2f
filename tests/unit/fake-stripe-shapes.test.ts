import Stripe from 'stripe';
import shapes from '../fixtures/stripe-fixture-shapes.json';
import { createStripeClient, STRIPE_API_VERSION, stripeHostOptions, toInvoiceState } from '../../src/stripe/stripe-client';
import { startFakeStripe, type FakeStripe } from '../helpers/fake-stripe';

/**
 * The fake Stripe's billing objects carry every field of Stripe's published fixtures
 * (tests/fixtures/stripe-fixture-shapes.json holds their key names, from github.com/stripe/openapi
 * fixtures3.json), and the real stripe-node client reads them.
 */
const keys = (o: unknown) => Object.keys(o as object).sort();
/** Fields Stripe's types have that the fixture leaves out because they are null there. */
const OPTIONAL: Record<string, string[]> = { 'line_item.pricing': ['price_details'] };

let fake: FakeStripe;
let stripe: Stripe;
beforeAll(async () => {
  fake = await startFakeStripe();
  stripe = new Stripe('sk_test_shapes', { apiVersion: STRIPE_API_VERSION, ...stripeHostOptions(fake.url), maxNetworkRetries: 0 });
});
afterAll(() => fake.close());

const expectShape = (name: keyof typeof shapes, o: unknown) => {
  const want = shapes[name] as string[];
  expect(keys(o).filter((k) => !want.includes(k) && !(OPTIONAL[name] ?? []).includes(k))).toEqual([]);
  expect(want.filter((k) => !keys(o).includes(k))).toEqual([]);
};

describe('the fake Stripe speaks in the published shapes', () => {
  it('an invoice, its lines and its transitions have every fixture field and nothing else, and the port reads them', async () => {
    const customer = await stripe.customers.create({ email: 'shape@example.com' });
    const created = fake.createInvoice({
      customer: customer.id,
      status: 'open',
      lines: [
        { description: 'Base', quantity: 1, amount: 4900, price: 'price_base' },
        { description: 'API calls', quantityDecimal: '1234.5', amount: 617, price: 'price_calls' },
      ],
      tax: 551,
    });
    const inv = await stripe.invoices.retrieve(created.id);
    expectShape('invoice', inv);
    expectShape('invoice.status_transitions', inv.status_transitions);
    expectShape('invoice.lines', inv.lines);
    for (const line of inv.lines.data) {
      expectShape('line_item', line);
      expectShape('line_item.pricing', line.pricing);
      expectShape('line_item.period', line.period);
    }
    const state = toInvoiceState(inv);
    expect(state).toMatchObject({
      status: 'open',
      subtotal: 5517,
      tax: 551,
      total: 6068,
      amountDue: 6068,
      amountRemaining: 6068,
      number: expect.stringMatching(/^VEND-/),
    });
    expect(state.lines.map((l) => [l.quantity, l.amount, l.priceId])).toEqual([
      [1, 4900, 'price_base'],
      [1234.5, 617, 'price_calls'],
    ]);
    fake.setInvoiceStatus(created.id, 'paid');
    expect(toInvoiceState(await stripe.invoices.retrieve(created.id))).toMatchObject({ status: 'paid', amountPaid: 6068, amountRemaining: 0 });
  });

  it('a portal session has every fixture field; the port hands back its URL', async () => {
    const customer = await stripe.customers.create({ email: 'portal-shape@example.com' });
    const port = createStripeClient({ stripe: { secretKey: 'sk_test_shapes', apiBase: fake.url, timeoutMs: 5000 } } as never);
    const { url } = await port.createPortalSession({ stripeCustomerId: customer.id, returnUrl: 'https://vendor.example/billing' });
    expect(url).toMatch(/^https:\/\/billing\.stripe\.com\//);
    expectShape('billing_portal.session', fake.portalSessions.at(-1));
    expect(fake.portalSessions.at(-1)).toMatchObject({ customer: customer.id, return_url: 'https://vendor.example/billing' });
  });

  it('an invoice with more lines than its first page is read whole; a list pages newest first', async () => {
    const customer = await stripe.customers.create({ email: 'many-lines@example.com' });
    const port = createStripeClient({ stripe: { secretKey: 'sk_test_shapes', apiBase: fake.url, timeoutMs: 5000 } } as never);
    const big = fake.createInvoice({
      customer: customer.id,
      status: 'open',
      created: 1_700_000_000,
      lines: Array.from({ length: 25 }, (_, i) => ({ amount: i, quantity: 1 })),
    });
    for (let i = 1; i <= 120; i++) fake.createInvoice({ customer: customer.id, created: 1_700_000_000 + i, lines: [{ amount: i, quantity: 1 }] });
    expect((await port.retrieveInvoice(big.id))!.lines).toHaveLength(25);
    const all = await port.listInvoices(customer.id);
    expect(all).toHaveLength(121);
    expect(all[0]!.created.getTime()).toBeGreaterThan(all[120]!.created.getTime());
    expect(all.find((i) => i.id === big.id)!.lines).toHaveLength(25);
    expect(await port.retrieveInvoice('in_missing')).toBeNull();
  });
});
