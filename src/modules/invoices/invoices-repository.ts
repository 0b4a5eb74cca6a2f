import type { Knex } from 'knex';
import { jsonb, type InvoiceRow } from '../../db/tables';
import type { InvoiceStatus } from '../../stripe/stripe-port';
import { MAY_REPLACE_SQL } from './invoice-order';
import type { Invoice, InvoiceContent, InvoiceLine } from './invoice-types';

/** Each line with its keys in one order (jsonb keeps its own), so two copies compare as text. */
export const lineOf = (l: InvoiceLine): InvoiceLine => ({
  description: l.description,
  quantity: l.quantity,
  amount: l.amount,
  price: l.price,
  metric: l.metric,
  period: { start: l.period.start, end: l.period.end },
});

const toInvoice = (r: InvoiceRow): Invoice => ({
  id: r.id,
  customerId: r.customer_id,
  stripeInvoiceId: r.stripe_invoice_id,
  subscriptionId: r.subscription_id,
  stripeSubscriptionId: r.stripe_subscription_id,
  number: r.number,
  status: r.status,
  currency: r.currency,
  amountDue: Number(r.amount_due),
  amountPaid: Number(r.amount_paid),
  amountRemaining: Number(r.amount_remaining),
  subtotal: Number(r.subtotal),
  tax: Number(r.tax),
  total: Number(r.total),
  periodStart: r.period_start,
  periodEnd: r.period_end,
  dueDate: r.due_date,
  hostedInvoiceUrl: r.hosted_invoice_url,
  invoicePdf: r.invoice_pdf,
  lines: r.lines.map(lineOf),
  stripeCreatedAt: r.stripe_created_at,
  finalizedAt: r.finalized_at,
  paidAt: r.paid_at,
  voidedAt: r.voided_at,
  markedUncollectibleAt: r.marked_uncollectible_at,
  stripeStateAt: r.stripe_state_at,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export interface InvoiceFilter {
  customerId: string;
  /** Drafts are left out unless asked for by status, or included. */
  includeDrafts: boolean;
  status?: InvoiceStatus;
  /** The keyset cursor: the last invoice of the previous page. */
  before?: { createdAt: Date; id: string };
  limit: number;
}

export function createInvoicesRepository() {
  return {
    /**
     * Serialises the writers of one Stripe invoice until the caller's transaction ends, whether or
     * not its row exists yet: each reads the copy it replaces, and reports exactly that change.
     */
    async lockStripeId(db: Knex, stripeInvoiceId: string): Promise<void> {
      await db.raw(`select pg_advisory_xact_lock(hashtext('invoices.stripe_invoice_id'), hashtext(?))`, [stripeInvoiceId]);
    },

    async findByStripeId(db: Knex, stripeInvoiceId: string): Promise<Invoice | null> {
      const row = await db('invoices').where({ stripe_invoice_id: stripeInvoiceId }).first();
      return row ? toInvoice(row) : null;
    },

    /** By our id or Stripe's, within one customer's when given. */
    async find(db: Knex, ref: { id: string } | { stripeInvoiceId: string }, customerId?: string): Promise<Invoice | null> {
      const q = db('invoices').where('id' in ref ? { id: ref.id } : { stripe_invoice_id: ref.stripeInvoiceId });
      if (customerId) q.where({ customer_id: customerId });
      const row = await q.first();
      return row ? toInvoice(row) : null;
    },

    /** Newest first by Stripe's created, then by our id. */
    async list(db: Knex, f: InvoiceFilter): Promise<Invoice[]> {
      const q = db('invoices').where({ customer_id: f.customerId });
      if (f.status) q.where({ status: f.status });
      else if (!f.includeDrafts) q.whereNot({ status: 'draft' });
      if (f.before) q.whereRaw('(stripe_created_at, id) < (?, ?)', [f.before.createdAt, f.before.id]);
      const rows = await q
        .orderBy([
          { column: 'stripe_created_at', order: 'desc' },
          { column: 'id', order: 'desc' },
        ])
        .limit(f.limit);
      return rows.map(toInvoice);
    },

    /** A customer's drafts, with their Stripe ids and when each was read. */
    async listDrafts(db: Knex, customerId: string): Promise<Invoice[]> {
      return (await db('invoices').where({ customer_id: customerId, status: 'draft' })).map(toInvoice);
    },

    /**
     * Stripe's state, inserted, or replacing ours when the ordering rules allow (invoice-order.ts:
     * checked by the caller first, and again here). Returns the row written, or null if refused.
     */
    async upsert(db: Knex, a: { id: string; customerId: string; stripeInvoiceId: string; content: InvoiceContent; stateAt: Date }): Promise<Invoice | null> {
      const c = a.content;
      const insert = db('invoices').insert({
        id: a.id,
        customer_id: a.customerId,
        stripe_invoice_id: a.stripeInvoiceId,
        subscription_id: c.subscriptionId,
        stripe_subscription_id: c.stripeSubscriptionId,
        number: c.number,
        status: c.status,
        currency: c.currency,
        amount_due: c.amountDue,
        amount_paid: c.amountPaid,
        amount_remaining: c.amountRemaining,
        subtotal: c.subtotal,
        tax: c.tax,
        total: c.total,
        period_start: c.periodStart,
        period_end: c.periodEnd,
        due_date: c.dueDate,
        hosted_invoice_url: c.hostedInvoiceUrl,
        invoice_pdf: c.invoicePdf,
        lines: jsonb(c.lines.map(lineOf)),
        stripe_created_at: c.stripeCreatedAt,
        finalized_at: c.finalizedAt,
        paid_at: c.paidAt,
        voided_at: c.voidedAt,
        marked_uncollectible_at: c.markedUncollectibleAt,
        stripe_state_at: a.stateAt,
      });
      const columns = [
        'subscription_id',
        'stripe_subscription_id',
        'number',
        'status',
        'currency',
        'amount_due',
        'amount_paid',
        'amount_remaining',
        'subtotal',
        'tax',
        'total',
        'period_start',
        'period_end',
        'due_date',
        'hosted_invoice_url',
        'invoice_pdf',
        'lines',
        'stripe_created_at',
        'finalized_at',
        'paid_at',
        'voided_at',
        'marked_uncollectible_at',
        'stripe_state_at',
      ];
      const rows: InvoiceRow[] = await insert
        .onConflict('stripe_invoice_id')
        .merge({ ...Object.fromEntries(columns.map((col) => [col, db.raw('excluded.??', [col])])), updated_at: db.fn.now() })
        .whereRaw(MAY_REPLACE_SQL)
        .returning('*');
      return rows[0] ? toInvoice(rows[0]) : null;
    },

    /** A later read that changed nothing: only when it was read moves on (our copy did not change). */
    async touch(db: Knex, id: string, stateAt: Date): Promise<void> {
      await db('invoices').where({ id }).where('stripe_state_at', '<', stateAt).update({ stripe_state_at: stateAt });
    },

    /** Deletes our copy if it is (still) a draft read before `readBefore` (when given). */
    async deleteDraft(db: Knex, id: string, readBefore?: Date): Promise<boolean> {
      const q = db('invoices').where({ id, status: 'draft' });
      if (readBefore) q.where('stripe_state_at', '<', readBefore);
      return (await q.delete()) > 0;
    },
  };
}

export type InvoicesRepository = ReturnType<typeof createInvoicesRepository>;
