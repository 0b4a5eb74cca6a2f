import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { isDatabaseUnavailable } from '../../db/db-errors';
import { AppError, NotFoundError } from '../../errors/app-error';
import { uuidv7 } from '../../lib/ids';
import type { ActorContext } from '../../lib/request-context';
import type { InvoiceStatus, StripeInvoiceState, StripePort } from '../../stripe/stripe-port';
import type { AuditService } from '../audit/audit-service';
import type { CustomersService } from '../customers/customers-service';
import type { PlansService } from '../plans/plans-service';
import { stripeFailure, type SubscriptionsService } from '../subscriptions/subscriptions-service';
import { refusal } from './invoice-order';
import type { Invoice, InvoiceApplied, InvoiceContent } from './invoice-types';
import { lineOf, type InvoicesRepository } from './invoices-repository';

export interface InvoicesServiceDeps {
  db: Knex;
  repo: InvoicesRepository;
  customers: Pick<CustomersService, 'findByStripeId' | 'assertExists' | 'withStripeCustomer'>;
  subscriptions: Pick<SubscriptionsService, 'idOfStripeSubscription'>;
  plans: Pick<PlansService, 'listAll'>;
  stripe: StripePort;
  audit: AuditService;
  logger: Logger;
  now?: () => number;
}

export interface InvoicePageQuery {
  status?: InvoiceStatus;
  /** The last invoice of the previous page (invoices-schemas.ts decodes the cursor). */
  before?: { createdAt: Date; id: string };
  limit: number;
}

/** One change reconciliation made, as POST /api/stripe/reconcile reports it. */
export interface InvoiceChange {
  invoice_id: string | null;
  stripe_invoice_id: string;
  change: string;
  from?: string;
  to?: string;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** Compared as text: two states are the same invoice when every field Stripe tells is. */
const CONTENT_KEYS: (keyof InvoiceContent)[] = [
  'subscriptionId',
  'stripeSubscriptionId',
  'number',
  'status',
  'currency',
  'amountDue',
  'amountPaid',
  'amountRemaining',
  'subtotal',
  'tax',
  'total',
  'periodStart',
  'periodEnd',
  'dueDate',
  'hostedInvoiceUrl',
  'invoicePdf',
  'lines',
  'stripeCreatedAt',
  'finalizedAt',
  'paidAt',
  'voidedAt',
  'markedUncollectibleAt',
];
const sameContent = (a: InvoiceContent, b: InvoiceContent) => JSON.stringify(CONTENT_KEYS.map((k) => a[k])) === JSON.stringify(CONTENT_KEYS.map((k) => b[k]));

/**
 * Our copy of each Stripe invoice of a customer of ours, so the customer's people can see their
 * bills without us asking Stripe on every read. Written only from Stripe's state as re-read (the
 * invoice webhooks, in their transaction) or listed (reconciliation), through `apply`, under the
 * ordering rules of invoice-order.ts. Customers never see drafts: Stripe may still change them.
 */
export function createInvoicesService(deps: InvoicesServiceDeps) {
  const { db, repo, customers, subscriptions, plans, stripe, audit, logger } = deps;
  const now = deps.now ?? Date.now;

  /** The invoice as we keep it: our subscription's id, and each line's metric from the plans' metered prices. */
  async function contentOf(trx: Knex, s: StripeInvoiceState): Promise<InvoiceContent> {
    const metricOf = new Map<string, string>();
    for (const plan of await plans.listAll(trx)) {
      for (const [metric, price] of Object.entries(plan.meteredPrices)) if (!metricOf.has(price)) metricOf.set(price, metric);
    }
    return {
      subscriptionId: s.stripeSubscriptionId ? await subscriptions.idOfStripeSubscription(trx, s.stripeSubscriptionId) : null,
      stripeSubscriptionId: s.stripeSubscriptionId,
      number: s.number,
      status: s.status,
      currency: s.currency,
      amountDue: s.amountDue,
      amountPaid: s.amountPaid,
      amountRemaining: s.amountRemaining,
      subtotal: s.subtotal,
      tax: s.tax,
      total: s.total,
      periodStart: s.periodStart,
      periodEnd: s.periodEnd,
      dueDate: s.dueDate,
      hostedInvoiceUrl: s.hostedInvoiceUrl,
      invoicePdf: s.invoicePdf,
      lines: s.lines.map((l) =>
        lineOf({
          description: l.description,
          quantity: l.quantity,
          amount: l.amount,
          price: l.priceId,
          metric: l.priceId ? (metricOf.get(l.priceId) ?? null) : null,
          period: { start: iso(l.periodStart), end: iso(l.periodEnd) },
        }),
      ),
      stripeCreatedAt: s.created,
      finalizedAt: s.finalizedAt,
      paidAt: s.paidAt,
      voidedAt: s.voidedAt,
      markedUncollectibleAt: s.markedUncollectibleAt,
    };
  }

  /**
   * Applies Stripe's state of an invoice, read at `readAt` (ms), in the caller's transaction: inserted
   * when new, replacing ours when the ordering rules allow, else left as it is (with the reason). An
   * invoice of a Stripe customer that is not ours is ignored.
   */
  async function apply(trx: Knex, s: StripeInvoiceState, readAt: number): Promise<InvoiceApplied> {
    await repo.lockStripeId(trx, s.id);
    const held = await repo.findByStripeId(trx, s.id);
    const customerId = held?.customerId ?? (await customers.findByStripeId(trx, s.stripeCustomerId))?.id;
    if (!customerId) return { outcome: 'ignored', invoiceId: null, reason: 'no customer of ours has its Stripe customer' };
    const content = await contentOf(trx, s);
    if (held) {
      const why = refusal(held, { status: s.status, readAt });
      if (why) return { outcome: 'unchanged', invoiceId: held.id, from: held.status, to: held.status, reason: why };
      if (sameContent(held, content)) {
        await repo.touch(trx, held.id, new Date(readAt));
        return { outcome: 'unchanged', invoiceId: held.id, from: held.status, to: held.status };
      }
    }
    const written = await repo.upsert(trx, { id: held?.id ?? uuidv7(now()), customerId, stripeInvoiceId: s.id, content, stateAt: new Date(readAt) });
    // Under the lock the guard cannot refuse what refusal() allowed; if it ever did, fail loudly (Stripe retries).
    if (!written) throw new Error(`the invoice upsert was refused under its lock (${s.id})`);
    return held
      ? { outcome: 'updated', invoiceId: written.id, from: held.status, to: written.status }
      : { outcome: 'inserted', invoiceId: written.id, from: null, to: written.status };
  }

  /** Stripe has no such invoice (a deleted draft): our copy goes too, if it is a draft. */
  async function applyGone(trx: Knex, stripeInvoiceId: string): Promise<InvoiceApplied> {
    await repo.lockStripeId(trx, stripeInvoiceId);
    const held = await repo.findByStripeId(trx, stripeInvoiceId);
    if (!held) return { outcome: 'ignored', invoiceId: null, reason: 'Stripe has no such invoice, and we hold none' };
    if (held.status !== 'draft' || !(await repo.deleteDraft(trx, held.id))) {
      return { outcome: 'unchanged', invoiceId: held.id, from: held.status, to: held.status, reason: `Stripe has no such invoice, but ours is ${held.status}` };
    }
    return { outcome: 'deleted', invoiceId: held.id, from: 'draft', to: null };
  }

  function changeOf(r: InvoiceApplied, stripeInvoiceId: string): InvoiceChange | null {
    const base = { invoice_id: r.invoiceId, stripe_invoice_id: stripeInvoiceId };
    if (r.outcome === 'inserted') return { ...base, change: 'added', to: r.to };
    if (r.outcome === 'updated') return { ...base, change: 'updated', from: r.from, to: r.to };
    if (r.outcome === 'ignored') return { ...base, change: `ignored: ${r.reason}` };
    return null;
  }

  async function pageOf(customerId: string, q: InvoicePageQuery, includeDrafts: boolean) {
    const rows = await repo.list(db, { customerId, includeDrafts, status: q.status, before: q.before, limit: q.limit + 1 });
    return { items: rows.slice(0, q.limit), more: rows.length > q.limit };
  }

  return {
    apply,
    applyGone,

    /** The customer's own invoices, drafts never. */
    listForCustomer: async (customerId: string, q: InvoicePageQuery) => (q.status === 'draft' ? { items: [], more: false } : pageOf(customerId, q, false)),

    /** One of the customer's own invoices, by our id or Stripe's; a draft, or another's, is not found. */
    async getForCustomer(customerId: string, ref: { id: string } | { stripeInvoiceId: string }): Promise<Invoice> {
      const invoice = await repo.find(db, ref, customerId);
      if (!invoice || invoice.status === 'draft') throw new NotFoundError('Invoice');
      return invoice;
    },

    /** Every invoice of a customer, drafts included; a deleted customer's too. */
    async listForAdmin(customerId: string, q: InvoicePageQuery) {
      await customers.assertExists(db, customerId);
      return pageOf(customerId, q, true);
    },

    /**
     * Re-lists every linked customer's invoices in Stripe and applies each through `apply`, so an
     * event that never came (or came while we were down) is repaired; drafts Stripe no longer has
     * are deleted. One invoice that cannot be applied does not stop the others; a database that is
     * gone stops it all. Returns what was checked and each change.
     */
    async reconcile(ctx: ActorContext): Promise<{ checked: number; changes: InvoiceChange[] }> {
      const changes: InvoiceChange[] = [];
      let checked = 0;
      for (const customer of await customers.withStripeCustomer(db)) {
        const listedFrom = new Date(now());
        const live = await stripe.listInvoices(customer.stripeCustomerId!).catch((err: unknown) => {
          throw stripeFailure(err);
        });
        const readAt = now();
        const seen = new Set<string>();
        for (const s of live) {
          seen.add(s.id);
          checked++;
          try {
            const change = changeOf(await db.transaction((trx) => apply(trx, s, readAt)), s.id);
            if (change) changes.push(change);
          } catch (err) {
            if (isDatabaseUnavailable(err)) throw err;
            logger.error({ err, stripeInvoiceId: s.id }, 'reconciliation could not apply an invoice');
            const code = err instanceof AppError ? `${err.code}: ${err.message}` : 'INTERNAL_ERROR: the invoice could not be applied';
            changes.push({ invoice_id: (await repo.findByStripeId(db, s.id))?.id ?? null, stripe_invoice_id: s.id, change: `failed: ${code}` });
          }
        }
        for (const draft of await repo.listDrafts(db, customer.id)) {
          if (seen.has(draft.stripeInvoiceId)) continue;
          // Only a draft read before the list was asked for: one a webhook brought since may be newer than the list.
          const gone = await db.transaction(async (trx) => {
            await repo.lockStripeId(trx, draft.stripeInvoiceId);
            return repo.deleteDraft(trx, draft.id, listedFrom);
          });
          if (gone) changes.push({ invoice_id: draft.id, stripe_invoice_id: draft.stripeInvoiceId, change: 'deleted: Stripe no longer has it', from: 'draft' });
        }
      }
      await audit.recordDetached(ctx, { action: 'invoice.reconcile', outcome: 'success', details: { checked, changed: changes.length } });
      return { checked, changes };
    },
  };
}

export type InvoicesService = ReturnType<typeof createInvoicesService>;
