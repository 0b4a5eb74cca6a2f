import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { Config } from '../../config';
import { mapLimit } from '../../lib/map-limit';
import { systemContext } from '../../lib/request-context';
import { StripeCallError, type StripePort } from '../../stripe/stripe-port';
import type { AuditService } from '../audit/audit-service';
import type { CustomersService } from '../customers/customers-service';
import { pickSubscription } from '../licenses/license-status';
import type { PlansService } from '../plans/plans-service';
import type { SubscriptionsService } from '../subscriptions/subscriptions-service';
import { createLeaseKeeper } from '../usage/forwarding-leases';
import { billedQuantity, itemDescription, NotBillableError, priceTerms } from './true-up-pricing';
import type { TrueUp, TrueUpsRepository } from './true-ups-repository';

export type TrueUpOutcome = 'sent' | 'retried' | 'failed';

export interface TrueUpWorkerDeps {
  db: Knex;
  repo: TrueUpsRepository;
  stripe: StripePort;
  customers: Pick<CustomersService, 'findById'>;
  subscriptions: Pick<SubscriptionsService, 'list'>;
  plans: Pick<PlansService, 'findByCode'>;
  audit: Pick<AuditService, 'record'>;
  logger: Logger;
  /** The usage forwarder's settings (FORWARDER_*): whether it runs here, how often, attempts, backoff, lease. */
  settings: Pick<Config['forwarder'], 'enabled' | 'intervalMs' | 'concurrency' | 'maxAttempts' | 'backoffBaseMs' | 'backoffMaxMs' | 'leaseSeconds'>;
  random?: () => number;
  /** Observes each true-up's outcome (metrics). */
  onOutcome?: (outcome: TrueUpOutcome) => void;
}

export interface TrueUpRunSummary {
  claimed: number;
  sent: number;
  retried: number;
  failed: number;
  released: number;
}

/** True-ups are few (one per bundle and metric): a lease this size is billed in a few seconds. */
const BATCH = 50;
/** A subscription that has ended has no next invoice to carry the item. */
const ENDED = new Set(['canceled', 'incomplete_expired']);

/** Where a true-up is billed: whose invoice, which subscription's, and at which of the plan's prices. */
interface Target {
  stripeCustomerId: string;
  stripeSubscriptionId: string;
  priceId: string;
}

/**
 * Bills late usage (true-ups, true-ups-service.ts) as Stripe invoice items, through the outbox in
 * usage_true_ups. Each pass claims due true-ups with FOR UPDATE SKIP LOCKED and a short lease,
 * renewed while held (the usage forwarder's lease keeper), so any number of instances run it and
 * what a dead one held is due again within FORWARDER_LEASE_SECONDS. For each: the customer's Stripe
 * customer, its current subscription, the metered price of the metric in that subscription's plan,
 * the price's terms from Stripe, then one invoice item with the idempotency key `true-up-<id>`.
 *
 * The key makes every resend one item: a lost answer, a crash between Stripe's answer and the mark,
 * or a lease that ran out send the same request again and Stripe answers with the item it made. Its
 * parameters are the true-up's and the price's, so a resend asks for exactly the same thing (Stripe
 * refuses a key reused with other parameters). Retryable failures (network, 409, 429, 5xx) are tried
 * again with capped exponential backoff and jitter, until FORWARDER_MAX_ATTEMPTS; a permanent 4xx,
 * or a true-up that cannot be billed as it stands (no Stripe customer, no subscription, no metered
 * price, a tiered price), is failed at once with the reason. Sent and failed are audited (system).
 */
export function createTrueUpWorker(deps: TrueUpWorkerDeps) {
  const { db, repo, stripe, audit, logger, settings } = deps;
  const random = deps.random ?? Math.random;
  const leases = createLeaseKeeper({
    db,
    repo,
    logger,
    leaseSeconds: settings.leaseSeconds,
    what: 'true-up',
    givenUp: 'the true-up will be sent again (its idempotency key makes no second invoice item)',
  });
  let stopping = false;
  let timer: NodeJS.Timeout | null = null;
  let current: Promise<TrueUpRunSummary> | null = null;

  /** Equal jitter, as the usage forwarder: half the capped exponential delay, plus a random part of the other half. */
  function backoffMs(attempts: number): number {
    const cap = Math.min(settings.backoffMaxMs, settings.backoffBaseMs * 2 ** Math.max(0, attempts - 1));
    return Math.round(cap / 2 + random() * (cap / 2));
  }

  async function targetOf(t: TrueUp): Promise<Target> {
    const customer = await deps.customers.findById(db, t.customerId);
    if (!customer?.stripeCustomerId) throw new NotBillableError('customer not linked to Stripe');
    const sub = pickSubscription((await deps.subscriptions.list(t.customerId)).filter((s) => !ENDED.has(s.status)));
    if (!sub) throw new NotBillableError('customer has no current subscription to bill the true-up on');
    if (!sub.stripeSubscriptionId) throw new NotBillableError(`the current subscription ${sub.id} is not in Stripe`);
    const plan = await deps.plans.findByCode(db, sub.plan.code);
    const priceId = plan?.meteredPrices[t.metric];
    if (!priceId) throw new NotBillableError(`plan "${sub.plan.code}" has no metered price for ${t.metric} (its metered_prices)`);
    return { stripeCustomerId: customer.stripeCustomerId, stripeSubscriptionId: sub.stripeSubscriptionId, priceId };
  }

  /** The invoice item's id, or a StripeCallError / NotBillableError. */
  async function send(t: TrueUp, target: Target): Promise<string> {
    const price = await stripe.retrievePrice(target.priceId);
    if (!price) throw new NotBillableError(`price ${target.priceId} (the plan's metered price for ${t.metric}) does not exist in Stripe`);
    const terms = priceTerms(price);
    return stripe.createInvoiceItem({
      idempotencyKey: `true-up-${t.id}`,
      stripeCustomerId: target.stripeCustomerId,
      stripeSubscriptionId: target.stripeSubscriptionId,
      ...terms,
      quantityDecimal: billedQuantity(t.quantity, price.transformQuantity),
      description: itemDescription(t),
      period: { start: t.occurredFrom, end: t.occurredTo },
      metadata: { true_up_id: t.id, metric: t.metric, quantity: t.quantity, bundle_id: t.bundleId },
    });
  }

  const about = (t: TrueUp) => ({ customer_id: t.customerId, bundle_id: t.bundleId, metric: t.metric, quantity: t.quantity, attempts: t.attempts });

  async function fail(t: TrueUp, error: string, priceId: string | null, s: TrueUpRunSummary): Promise<void> {
    await leases.settle([t.id], () =>
      db.transaction(async (trx) => {
        if (!(await repo.markFailed(trx, t.id, error, priceId))) return;
        await audit.record(trx, systemContext(), {
          action: 'usage.true_up_failed',
          outcome: 'failure',
          targetType: 'usage_true_up',
          targetId: t.id,
          details: { ...about(t), error },
        });
      }),
    );
    s.failed++;
    deps.onOutcome?.('failed');
    logger.error({ trueUpId: t.id, customerId: t.customerId, metric: t.metric, attempts: t.attempts, error }, 'true-up failed; an admin can retry it');
  }

  async function bill(t: TrueUp, s: TrueUpRunSummary): Promise<void> {
    let target: Target | null = null;
    let itemId: string;
    try {
      target = await targetOf(t);
      itemId = await send(t, target);
    } catch (err) {
      if (err instanceof NotBillableError) return fail(t, err.message, target?.priceId ?? null, s);
      // Anything else (Stripe, or PostgreSQL while reading the target) may go through later.
      const failure = err instanceof StripeCallError ? err : new StripeCallError(String(err), true);
      if (!failure.retryable || t.attempts >= settings.maxAttempts) return fail(t, failure.message, target?.priceId ?? null, s);
      const delay = backoffMs(t.attempts);
      await leases.settle([t.id], () => repo.scheduleRetry(db, t.id, delay, failure.message));
      s.retried++;
      deps.onOutcome?.('retried');
      logger.warn({ trueUpId: t.id, attempts: t.attempts, retryInMs: delay, status: failure.status, error: failure.message }, 'true-up not billed; will retry');
      return;
    }
    const { priceId } = target;
    await leases.settle([t.id], () =>
      db.transaction(async (trx) => {
        if (!(await repo.markSent(trx, t.id, { stripeInvoiceItemId: itemId, stripePriceId: priceId }))) return;
        await audit.record(trx, systemContext(), {
          action: 'usage.true_up_sent',
          outcome: 'success',
          targetType: 'usage_true_up',
          targetId: t.id,
          details: { ...about(t), stripe_invoice_item_id: itemId, stripe_price_id: priceId },
        });
      }),
    );
    s.sent++;
    deps.onOutcome?.('sent');
    logger.info({ trueUpId: t.id, customerId: t.customerId, metric: t.metric, stripeInvoiceItemId: itemId }, 'true-up billed as a Stripe invoice item');
  }

  /** One lease: claims, bills with FORWARDER_CONCURRENCY at once, gives back what stopping left unattempted. */
  async function pass(): Promise<TrueUpRunSummary> {
    const s: TrueUpRunSummary = { claimed: 0, sent: 0, retried: 0, failed: 0, released: 0 };
    if (stopping || !stripe.enabled) return s;
    const since = Date.now();
    const claimed = await repo.claim(db, BATCH, settings.leaseSeconds);
    leases.hold(
      claimed.map((t) => t.id),
      since,
    );
    s.claimed = claimed.length;
    const unattempted: string[] = [];
    await mapLimit(claimed, settings.concurrency, async (t) => {
      // A lease that ended is someone else's now.
      if (!leases.live(t.id)) return;
      if (stopping) unattempted.push(t.id);
      else await bill(t, s);
    });
    if ((await leases.settle(unattempted, () => repo.release(db, unattempted))) !== null) s.released = unattempted.length;
    if (s.claimed > 0) logger.info({ ...s }, 'true-up run');
    return s;
  }

  /** Passes while leases come back full, then waits FORWARDER_INTERVAL_MS. */
  function loop(): void {
    if (stopping) return;
    current = (async () => {
      let s: TrueUpRunSummary;
      do s = await pass();
      while (!stopping && s.claimed === BATCH);
      return s;
    })()
      .catch((err: unknown) => {
        logger.error({ err }, 'true-up worker run failed; retrying later');
        return { claimed: 0, sent: 0, retried: 0, failed: 0, released: 0 };
      })
      .finally(() => {
        current = null;
      });
    void current.then(() => {
      if (stopping) return;
      timer = setTimeout(loop, settings.intervalMs);
      timer.unref();
    });
  }

  return {
    /** One pass (tests, and a first look at start). */
    runOnce: () => pass(),
    backoffMs,
    start(): void {
      if (!stripe.enabled || !settings.enabled) return;
      stopping = false;
      loop();
    },
    /** Finishes the true-ups under way (their outcomes written), gives back those claimed and not yet attempted. */
    async stop(): Promise<void> {
      stopping = true;
      if (timer) clearTimeout(timer);
      await current;
      leases.close();
    },
    /** True-ups this instance holds a lease on. */
    held: () => leases.size(),
  };
}

export type TrueUpWorker = ReturnType<typeof createTrueUpWorker>;
