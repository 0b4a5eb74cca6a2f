import { billedQuantity, itemDescription, NotBillableError, priceTerms, TIERED_REFUSAL } from '../../src/modules/true-ups/true-up-pricing';
import type { StripePriceState } from '../../src/stripe/stripe-port';

const price = (p: Partial<StripePriceState> = {}): StripePriceState => ({
  id: 'price_1',
  currency: 'usd',
  product: 'prod_1',
  active: true,
  billingScheme: 'per_unit',
  unitAmountDecimal: '0.05',
  transformQuantity: null,
  ...p,
});

describe('billedQuantity (transform_quantity, as Stripe bills a metered price)', () => {
  test.each([
    ['1500.5', null, '1500.5'],
    ['1500.5', { divideBy: 1000, round: 'up' }, '2'],
    ['1500.5', { divideBy: 1000, round: 'down' }, '1'],
    ['2000', { divideBy: 1000, round: 'up' }, '2'],
    ['2000.000001', { divideBy: 1000, round: 'up' }, '3'],
    ['999.999999', { divideBy: 1000, round: 'down' }, '0'],
    ['0', { divideBy: 7, round: 'up' }, '0'],
    // Exact beyond a float's digits: 14 integer digits and 6 decimals.
    ['99999999999999.999999', { divideBy: 3, round: 'down' }, '33333333333333'],
    ['99999999999999.999999', { divideBy: 3, round: 'up' }, '33333333333334'],
  ] as const)('when %s is divided by %j, then it is %s', (quantity, transform, expected) => {
    expect(billedQuantity(quantity, transform)).toBe(expected);
  });
});

describe('priceTerms', () => {
  test('when the price is per unit, then its currency, product and unit amount; tiered or without an amount, it cannot bill a true-up', () => {
    expect(priceTerms(price())).toEqual({ currency: 'usd', product: 'prod_1', unitAmountDecimal: '0.05' });
    expect(() => priceTerms(price({ billingScheme: 'tiered', unitAmountDecimal: null }))).toThrow(new NotBillableError(TIERED_REFUSAL));
    expect(() => priceTerms(price({ unitAmountDecimal: null }))).toThrow(/has no unit amount/);
  });
});

test('when a true-up is described, then the invoice line names its quantity, metric and the days its usage happened (UTC)', () => {
  expect(
    itemDescription({ quantity: '35.5', metric: 'api_calls', occurredFrom: new Date('2026-10-01T23:59:00Z'), occurredTo: new Date('2026-10-20T00:00:01Z') }),
  ).toBe('Late usage: 35.5 api_calls (2026-10-01 to 2026-10-20)');
});
