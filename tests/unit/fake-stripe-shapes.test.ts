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
const OPTIONAL: Record<string, string[]> = { 'line_item.pricing': ['price_details'], 'invoiceitem.pricing': ['price_details'] };

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

  it('prices (per unit, tiered, with transform_quantity) have every fixture field; the port reads their terms', async () => {
    const port = createStripeClient({ stripe: { secretKey: 'sk_test_shapes', apiBase: fake.url, timeoutMs: 5000 } } as never);
    const recurring = { interval: 'month', usage_type: 'metered' } as const;
    const perUnit = await stripe.prices.create({
      currency: 'eur',
      product: 'prod_shapes',
      // stripe-node 23 types it as its Decimal.
      unit_amount_decimal: Stripe.Decimal.from('0.125'),
      transform_quantity: { divide_by: 1000, round: 'up' },
      recurring,
    });
    const tiered = await stripe.prices.create({
      currency: 'usd',
      product: 'prod_shapes',
      billing_scheme: 'tiered',
      tiers_mode: 'graduated',
      tiers: [
        { up_to: 1000, unit_amount: 5 },
        { up_to: 'inf', unit_amount: 2 },
      ],
      recurring,
    });
    for (const p of [perUnit, tiered]) {
      expectShape('price', fake.prices.get(p.id));
      expectShape('price.recurring', fake.prices.get(p.id)!.recurring);
    }
    expectShape('price.transform_quantity', fake.prices.get(perUnit.id)!.transform_quantity);
    expect(await port.retrievePrice(perUnit.id)).toEqual({
      id: perUnit.id,
      currency: 'eur',
      product: 'prod_shapes',
      active: true,
      billingScheme: 'per_unit',
      unitAmountDecimal: '0.125',
      transformQuantity: { divideBy: 1000, round: 'up' },
    });
    expect(await port.retrievePrice(tiered.id)).toMatchObject({ billingScheme: 'tiered', unitAmountDecimal: null, transformQuantity: null });
    expect(await port.retrievePrice('price_missing')).toBeNull();
  });

  it('an invoice item made through the port has every fixture field; stripe-node sends its Decimals as the plain form fields the fake reads; a repeated key makes no second item', async () => {
    const customer = await stripe.customers.create({ email: 'items@example.com' });
    const sub = await stripe.subscriptions.create({ customer: customer.id, items: [{ price: 'price_base' }] });
    const port = createStripeClient({ stripe: { secretKey: 'sk_test_shapes', apiBase: fake.url, timeoutMs: 5000 } } as never);
    const input = {
      idempotencyKey: `true-up-shapes-${Date.now()}`,
      stripeCustomerId: customer.id,
      stripeSubscriptionId: sub.id,
      currency: 'usd',
      product: 'prod_calls',
      unitAmountDecimal: '0.000125',
      quantityDecimal: '99999999999999.999999',
      description: 'Late usage: 99999999999999.999999 api_calls (2026-10-01 to 2026-10-20)',
      period: { start: new Date('2026-10-01T10:00:00.500Z'), end: new Date('2026-10-20T10:00:00.500Z') },
      metadata: { true_up_id: 't1', metric: 'api_calls', quantity: '99999999999999.999999', bundle_id: 'b1' },
    };
    const itemId = await port.createInvoiceItem(input);
    const call = fake.invoiceItemCalls().at(-1)!;
    // Strings, not {_coefficient, _exponent}: stripe-node 23 coerces its Decimal for this endpoint's form.
    expect(call.body).toEqual({
      customer: customer.id,
      subscription: sub.id,
      price_data: { currency: 'usd', product: 'prod_calls', unit_amount_decimal: '0.000125' },
      quantity_decimal: '99999999999999.999999',
      description: input.description,
      period: { start: String(Date.parse('2026-10-01T10:00:00Z') / 1000), end: String(Date.parse('2026-10-20T10:00:01Z') / 1000) },
      metadata: input.metadata,
    });
    expect(call.idempotencyKey).toBe(input.idempotencyKey);
    const item = fake.invoiceItems.get(itemId)!;
    expectShape('invoiceitem', item);
    expectShape('invoiceitem.period', item.period);
    expectShape('invoiceitem.parent', item.parent);
    expectShape('invoiceitem.parent.subscription_details', item.parent.subscription_details);
    expectShape('invoiceitem.pricing', item.pricing);
    // 0.000125 x 99,999,999,999,999.999999 minor units, rounded.
    expect(item).toMatchObject({ customer: customer.id, amount: 12_500_000_000, quantity_decimal: '99999999999999.999999', invoice: null });
    // stripe-node reads the answer's decimals back as its Decimal.
    const read = await stripe.invoiceItems.create(
      {
        customer: customer.id,
        price_data: { currency: 'usd', product: 'prod_calls', unit_amount_decimal: Stripe.Decimal.from('2') },
        quantity_decimal: Stripe.Decimal.from('1.5'),
      },
      { idempotencyKey: `read-${input.idempotencyKey}` },
    );
    expect(String(read.quantity_decimal)).toBe('1.5');
    expect(read.amount).toBe(3);

    const items = fake.invoiceItems.size;
    expect(await port.createInvoiceItem(input)).toBe(itemId);
    expect(fake.invoiceItems.size).toBe(items);
  });
});
