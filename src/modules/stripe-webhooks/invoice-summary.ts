/**
 * What an invoice.paid or invoice.payment_failed event tells of Stripe's invoice (the copy in the
 * Stripe event, read as untrusted JSON: a field of another type is null). Fields as Stripe's Invoice
 * object names them (stripe-node's Invoice type); amounts in the currency's minor units.
 */
export function invoiceSummary(
  invoice: Record<string, unknown>,
  ours: { customerId: string; subscriptionId: string | null; stripeSubscriptionId: string | null },
): Record<string, unknown> {
  const text = (v: unknown, max = 2048) => (typeof v === 'string' && v.length <= max ? v : null);
  const int = (v: unknown) => (Number.isSafeInteger(v) ? (v as number) : null);
  const when = int(invoice.next_payment_attempt);
  return {
    id: text(invoice.id, 255),
    customer_id: ours.customerId,
    subscription_id: ours.subscriptionId,
    stripe_subscription_id: ours.stripeSubscriptionId,
    number: text(invoice.number, 255),
    status: text(invoice.status, 50),
    amount_due: int(invoice.amount_due),
    amount_paid: int(invoice.amount_paid),
    amount_remaining: int(invoice.amount_remaining),
    currency: text(invoice.currency, 10),
    attempt_count: int(invoice.attempt_count),
    next_payment_attempt: when === null ? null : new Date(when * 1000).toISOString(),
    hosted_invoice_url: text(invoice.hosted_invoice_url),
  };
}
