import type { StripePriceState } from '../../stripe/stripe-port';
import type { TrueUp } from './true-ups-repository';

/** Why a true-up cannot be billed as it stands: it is parked as failed at once, never retried on its own. */
export class NotBillableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotBillableError';
  }
}

/** The reason given for a tiered price: the amount of late usage depends on the period's whole total. */
export const TIERED_REFUSAL = 'tiered prices: bill this true-up by hand';

/** What an invoice item is priced at: the metered price's terms, given to Stripe as price_data. */
export interface PriceTerms {
  currency: string;
  product: string;
  unitAmountDecimal: string;
}

/**
 * The price's terms, or why a true-up cannot use them. A tiered price has no unit amount: what late
 * usage costs depends on where the period's total already stood in the tiers, which Stripe alone
 * knew when it invoiced, so it is billed by hand. A per-unit price without an amount (customer-chosen
 * amounts) cannot price usage either.
 */
export function priceTerms(price: StripePriceState): PriceTerms {
  if (price.billingScheme === 'tiered') throw new NotBillableError(TIERED_REFUSAL);
  if (price.unitAmountDecimal === null) throw new NotBillableError(`price ${price.id} has no unit amount: bill this true-up by hand`);
  return { currency: price.currency, product: price.product, unitAmountDecimal: price.unitAmountDecimal };
}

const SCALE = 1_000_000n;

/** A decimal string with at most 6 places (numeric(20,6)), in millionths. */
function micros(quantity: string): bigint {
  const [whole, frac = ''] = quantity.split('.');
  return BigInt(whole!) * SCALE + BigInt(frac.padEnd(6, '0').slice(0, 6));
}

/**
 * The quantity the invoice item carries. With transform_quantity, as Stripe bills a metered price:
 * the usage divided by divide_by, rounded to a whole number up or down as the price says (exact:
 * decimal arithmetic, never floats). The true-up's quantity is divided on its own, so its rounding
 * is its own: 1,500 late calls on a price per 1,000 rounded up are 2 units, whatever the period's
 * invoiced total had left over (docs/STRIPE.md, Late usage).
 */
export function billedQuantity(quantity: string, transform: StripePriceState['transformQuantity']): string {
  if (!transform) return quantity;
  const divisor = BigInt(transform.divideBy) * SCALE;
  const q = micros(quantity);
  const units = q / divisor;
  return String(transform.round === 'up' && q % divisor !== 0n ? units + 1n : units);
}

const day = (d: Date) => d.toISOString().slice(0, 10);

/** The line the customer reads on the invoice: what was late, how much, and when it happened. */
export const itemDescription = (t: Pick<TrueUp, 'quantity' | 'metric' | 'occurredFrom' | 'occurredTo'>) =>
  `Late usage: ${t.quantity} ${t.metric} (${day(t.occurredFrom)} to ${day(t.occurredTo)})`;
