import type { InvoiceStatus } from '../../stripe/stripe-port';

/**
 * Stripe moves an invoice one way: draft -> open -> (uncollectible ->) paid or void. Paid and void
 * are final. Webhooks arrive in any order and each re-read may race another, so a state is applied
 * only if it was read no earlier than the one we hold AND its status does not move back: an
 * invoice.updated re-read a moment before invoice.paid's, but committed after it, leaves it paid.
 */
export const STATUS_RANK: Readonly<Record<InvoiceStatus, number>> = { draft: 0, open: 1, uncollectible: 2, paid: 3, void: 3 };

const FINAL = new Set<InvoiceStatus>(['paid', 'void']);

/** Why a state read at `readAt` with `status` may not replace ours; null when it may. */
export function refusal(held: { status: InvoiceStatus; stripeStateAt: Date }, incoming: { status: InvoiceStatus; readAt: number }): string | null {
  if (held.stripeStateAt.getTime() > incoming.readAt) return 'an older read of it than the one we hold';
  if (incoming.status === held.status) return null;
  if (FINAL.has(held.status) || STATUS_RANK[incoming.status] < STATUS_RANK[held.status]) {
    return `its status would move back from ${held.status} to ${incoming.status}`;
  }
  return null;
}

/** The same rule in SQL, for the upsert's guard (`invoices`: the row held, `excluded`: the one offered). */
const rankSql = (col: string) =>
  `case ${col} ${Object.entries(STATUS_RANK)
    .map(([s, r]) => `when '${s}' then ${r}`)
    .join(' ')} end`;
export const MAY_REPLACE_SQL =
  `invoices.stripe_state_at <= excluded.stripe_state_at and (invoices.status = excluded.status or ` +
  `(invoices.status not in (${[...FINAL].map((s) => `'${s}'`).join(', ')}) and ${rankSql('excluded.status')} >= ${rankSql('invoices.status')}))`;
