import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { AppError, NotFoundError, ServiceUnavailableError } from '../../errors/app-error';
import { UUID_RE, uuidv7 } from '../../lib/ids';
import { isDatabaseUnavailable } from '../../db/db-errors';
import { systemContext, type ActorContext } from '../../lib/request-context';
import { StripeCallError, type StripePort, type StripeSubscriptionState } from '../../stripe/stripe-port';
import type { AuditService } from '../audit/audit-service';
import type { CustomersService } from '../customers/customers-service';
import type { EventEmitter } from '../events/events-service';
import type { Plan } from '../plans/plan-types';
import type { PlansService } from '../plans/plans-service';
import { subscriptionEvents } from './subscription-events';
import { fromStripe, type SubscriptionsRepository } from './subscriptions-repository';
import type { LocalState, Subscription } from './subscription-types';

export interface SubscriptionsServiceDeps {
  db: Knex;
  repo: SubscriptionsRepository;
  plans: Pick<PlansService, 'findByCode' | 'listAll'>;
  customers: Pick<CustomersService, 'assertActive' | 'assertExists' | 'findById' | 'findByStripeId' | 'withStripeCustomer' | 'ensureStripeCustomer'>;
  stripe: StripePort;
  audit: AuditService;
  /** subscription.* and license.grace_started events, written in the transaction of each write. */
  events: EventEmitter;
  /** LICENSE_GRACE_DAYS: a license.grace_started event names when the grace ends. */
  licenseGraceDays: number;
  logger: Logger;
  now?: () => number;
}

/** A failed Stripe call as the admin sees it: nothing local was changed, and it is safe to retry. */
export function stripeFailure(err: unknown): AppError {
  if (!(err instanceof StripeCallError)) return err as AppError;
  if (err.status === undefined) {
    return new ServiceUnavailableError('Stripe did not answer in time; nothing was changed here. Retry: the retry is idempotent', { cause: err });
  }
  if (err.status >= 500 || err.status === 429 || err.status === 409) {
    return new AppError('BAD_GATEWAY', `Stripe failed (${err.status}); nothing was changed here. Retry: the retry is idempotent`, undefined, { cause: err });
  }
  return new AppError('BAD_GATEWAY', `Stripe refused the request: ${err.message}`, undefined, { cause: err });
}

const MONTH_MS = 30 * 86_400_000;
const PAID = new Set(['active', 'trialing']);

/**
 * Where a local subscription (one Stripe does not hold) stands at `nowMs`: null when its period is
 * still running. A period that is over renews for another period (a trial that is over becomes
 * active, its first period starting at the trial's end), as many times as needed to reach now;
 * one set to cancel at the period end ends then instead.
 */
export function localRenewal(s: Subscription, nowMs: number): { next: Partial<LocalState>; periods: number } | null {
  if (s.stripeSubscriptionId || !PAID.has(s.status) || !s.currentPeriodEnd || s.currentPeriodEnd.getTime() > nowMs) return null;
  if (s.cancelAtPeriodEnd) return { next: { status: 'canceled', canceledAt: s.currentPeriodEnd, cancelAtPeriodEnd: false }, periods: 0 };
  const missed = Math.floor((nowMs - s.currentPeriodEnd.getTime()) / MONTH_MS);
  const start = s.currentPeriodEnd.getTime() + missed * MONTH_MS;
  return { next: { status: 'active', currentPeriodStart: new Date(start), currentPeriodEnd: new Date(start + MONTH_MS) }, periods: missed + 1 };
}

export function createSubscriptionsService(deps: SubscriptionsServiceDeps) {
  const { db, repo, plans, customers, stripe, audit, events, logger } = deps;
  const now = deps.now ?? Date.now;

  /** The events of a write of subscription `id`, `before` it read in the same transaction (null: new). */
  async function recordChange(trx: Knex, before: Subscription | null, id: string): Promise<void> {
    const after = (await repo.find(trx, id))!;
    await events.emit(trx, subscriptionEvents(before, after, deps.licenseGraceDays));
  }

  /** A write of a stored subscription and its events, in one transaction, the row locked first; `write` says whether it wrote. */
  async function writeStored(id: string, write: (trx: Knex) => Promise<boolean>): Promise<void> {
    await db.transaction(async (trx) => {
      const before = await repo.findForUpdate(trx, id);
      if (before && (await write(trx))) await recordChange(trx, before, id);
    });
  }

  async function activePlan(code: string): Promise<Plan> {
    const plan = await plans.findByCode(db, code);
    if (!plan) throw new AppError('VALIDATION_FAILED', 'Unknown plan', [{ path: 'plan', message: `no plan with code "${code}"` }]);
    if (plan.status !== 'active') throw new AppError('PLAN_ARCHIVED', `Plan "${code}" is archived: new subscriptions cannot use it`);
    if (stripe.enabled && !plan.stripePriceId) {
      throw new AppError('VALIDATION_FAILED', 'The plan has no Stripe price', [
        { path: 'plan', message: `plan "${code}" needs a stripe_price_id while Stripe is on` },
      ]);
    }
    return plan;
  }

  const priceIds = (plan: Plan) => [plan.stripePriceId!, ...Object.values(plan.meteredPrices)];

  /** Whether the metadata holds our ids (UUIDs) where we put them: only then is plan_code ours too. */
  function metadataIsOurs(s: StripeSubscriptionState): boolean {
    return (['customer_id', 'subscription_id'] as const).every((key) => {
      const v: unknown = s.metadata[key];
      return v === undefined || (typeof v === 'string' && UUID_RE.test(v));
    });
  }

  /**
   * Which of our plans a Stripe subscription is on: by its licensed price; else, for one we made
   * (our ids in its metadata), the plan_code we put there. Another tool's metadata names its own plans.
   */
  async function planFor(trx: Knex, s: StripeSubscriptionState, fallback?: string): Promise<string | null> {
    const all = await plans.listAll(trx);
    const byPrice = all.find((p) => p.stripePriceId && s.items.some((i) => i.priceId === p.stripePriceId));
    if (byPrice) return byPrice.id;
    const byCode = metadataIsOurs(s) ? all.find((p) => p.code === s.metadata.plan_code) : undefined;
    return byCode?.id ?? fallback ?? null;
  }

  /**
   * Our id for a subscription we never recorded: the one we put in its metadata when we made it,
   * unless another row holds it; a new one for a subscription made elsewhere (another tool keeps its
   * own ids there, "SUB-2291": they are never read as ours, and never overwritten in Stripe).
   */
  async function newId(trx: Knex, s: StripeSubscriptionState): Promise<{ id: string; made: 'by us' | 'elsewhere' }> {
    const wanted = s.metadata.subscription_id;
    if (!wanted || !UUID_RE.test(wanted)) return { id: uuidv7(), made: 'elsewhere' };
    const taken = await repo.find(trx, wanted);
    return taken && taken.stripeSubscriptionId !== s.id ? { id: uuidv7(), made: 'elsewhere' } : { id: wanted, made: 'by us' };
  }

  /**
   * Applies Stripe's state of a subscription locally, unless we already hold a newer one.
   * A subscription we never recorded is adopted when its Stripe customer is one of ours and it is
   * on one of our plans, whatever its metadata holds: the customer pays for it, so licenses and
   * limits must know it (a Dashboard or another tool made it). Its metadata stays as it is in
   * Stripe. An adoption of one we did not make is audited (subscription.adopt) when a context is
   * given, in the same transaction. Returns what happened, or 'ignored' and why when it is not ours
   * (of no customer or plan of ours).
   */
  async function apply(
    s: StripeSubscriptionState,
    stateAt: number,
    /** A transaction: the subscription's events are written in it. */
    trx: Knex,
    ctx?: ActorContext,
  ): Promise<
    | { outcome: 'inserted' | 'updated' | 'stale'; subscriptionId: string; adopted?: boolean }
    | { outcome: 'ignored'; reason: string; subscriptionId: string | null }
  > {
    await repo.lockStripeId(trx, s.id);
    const existing = await repo.findByStripeId(trx, s.id);
    let customerId = existing?.customerId;
    if (!existing) {
      const byMetadata = s.metadata.customer_id && UUID_RE.test(s.metadata.customer_id) ? s.metadata.customer_id : null;
      const customer = (await customers.findByStripeId(trx, s.stripeCustomerId)) ?? (byMetadata ? await customers.findById(trx, byMetadata) : null);
      if (!customer) return { outcome: 'ignored', reason: 'no customer of ours has its Stripe customer', subscriptionId: null };
      customerId = customer.id;
    }
    const planId = await planFor(trx, s, existing?.planId);
    if (!planId) return { outcome: 'ignored', reason: 'no plan of ours matches its prices', subscriptionId: existing?.id ?? null };
    const fresh = existing ? null : await newId(trx, s);
    const id = existing?.id ?? fresh!.id;
    const outcome = await repo.applyStripeState(trx, { id, customerId: customerId!, planId, stripeSubscriptionId: s.id, state: fromStripe(s), stateAt });
    if (outcome !== 'stale') await recordChange(trx, outcome === 'inserted' ? null : existing, id);
    const adopted = outcome === 'inserted' && fresh?.made === 'elsewhere';
    if (adopted && ctx) {
      const plan = (await plans.listAll(trx)).find((p) => p.id === planId);
      await audit.record(trx, ctx, {
        action: 'subscription.adopt',
        outcome: 'success',
        targetType: 'subscription',
        targetId: id,
        details: {
          customer_id: customerId,
          plan: plan?.code ?? null,
          stripe_subscription_id: s.id,
          status: s.status,
          // Which keys another tool keeps there (their values are its business, and stay in Stripe).
          metadata_keys: Object.keys(s.metadata).sort(),
        },
      });
    }
    return { outcome, subscriptionId: id, ...(adopted ? { adopted } : {}) };
  }

  /**
   * With Stripe off nothing else renews a subscription: every read brings local ones up to date
   * first, so the admin API, the customer's own list and the license always tell the same period.
   * Written once (the period it was read with guards the update), audited as the system.
   */
  async function current(subs: Subscription[]): Promise<Subscription[]> {
    const nowMs = now();
    return Promise.all(
      subs.map(async (s) => {
        const renewal = localRenewal(s, nowMs);
        if (!renewal) return s;
        let advanced = false;
        await writeStored(s.id, async (trx) => (advanced = await repo.advanceLocal(trx, s.id, s.currentPeriodEnd!, renewal.next)));
        if (advanced) {
          await audit.recordDetached(systemContext(), {
            action: renewal.next.status === 'canceled' ? 'subscription.end' : 'subscription.renew',
            outcome: 'success',
            targetType: 'subscription',
            targetId: s.id,
            details: {
              customer_id: s.customerId,
              periods: renewal.periods,
              current_period_end: renewal.next.currentPeriodEnd?.toISOString() ?? null,
              stripe: false,
            },
          });
        }
        return (await repo.find(db, s.id)) ?? s;
      }),
    );
  }

  async function mine(customerId: string, subscriptionId: string): Promise<Subscription> {
    const s = await repo.find(db, subscriptionId, customerId);
    if (!s) throw new NotFoundError('Subscription');
    return (await current([s]))[0]!;
  }

  async function record(ctx: ActorContext, action: string, s: Subscription, details: Record<string, unknown>) {
    await audit.recordDetached(ctx, {
      action,
      outcome: 'success',
      targetType: 'subscription',
      targetId: s.id,
      details: { customer_id: s.customerId, ...details },
    });
  }

  return {
    apply,
    stripeEnabled: stripe.enabled,

    list: async (customerId: string) => current(await repo.listForCustomer(db, customerId)),

    /** Our id for a Stripe subscription we hold, in the caller's Knex or transaction (an invoice names its subscription so). */
    idOfStripeSubscription: async (trx: Knex, stripeSubscriptionId: string): Promise<string | null> =>
      (await repo.findByStripeId(trx, stripeSubscriptionId))?.id ?? null,

    async listForAdmin(customerId: string) {
      await customers.assertExists(db, customerId);
      return current(await repo.listForCustomer(db, customerId));
    },

    /**
     * Creates the subscription in Stripe first, then records it. A failed Stripe call leaves
     * nothing here; the retry carries the same idempotency key (derived from the customer, the
     * plan and how many subscriptions the customer already has, or the caller's own key), so
     * Stripe answers with the subscription it may already have made instead of a second one.
     */
    async create(ctx: ActorContext, customerId: string, input: { planCode: string; trialDays?: number; idempotencyKey?: string }): Promise<Subscription> {
      let customer = await customers.assertActive(db, customerId);
      const plan = await activePlan(input.planCode);
      if (!stripe.enabled) {
        const id = uuidv7();
        const start = now();
        const trialEnd = input.trialDays ? new Date(start + input.trialDays * 86_400_000) : null;
        await db.transaction(async (trx) => {
          await repo.insertLocal(trx, {
            id,
            customerId,
            planId: plan.id,
            status: trialEnd ? 'trialing' : 'active',
            currentPeriodStart: new Date(start),
            currentPeriodEnd: trialEnd ?? new Date(start + MONTH_MS),
            cancelAtPeriodEnd: false,
            canceledAt: null,
            trialEnd,
          });
          await recordChange(trx, null, id);
        });
        const s = (await repo.find(db, id))!;
        await record(ctx, 'subscription.create', s, { plan: plan.code, stripe: false });
        return s;
      }
      try {
        customer = await customers.ensureStripeCustomer(ctx, customer);
        const n = await repo.countForCustomer(db, customerId);
        const idempotencyKey = input.idempotencyKey
          ? `subscription-create-${customerId}-${input.idempotencyKey}`
          : `subscription-create-${customerId}-${plan.id}-${n}`;
        const ourId = uuidv7();
        const created = await stripe.createSubscription({
          idempotencyKey,
          stripeCustomerId: customer.stripeCustomerId!,
          priceIds: priceIds(plan),
          trialDays: input.trialDays,
          metadata: { customer_id: customerId, plan_code: plan.code, subscription_id: ourId },
        });
        const { subscriptionId } = await db.transaction((trx) => apply(created, now(), trx));
        const s = (await repo.find(db, subscriptionId!))!;
        await record(ctx, 'subscription.create', s, { plan: plan.code, stripe_subscription_id: created.id, idempotency_key: idempotencyKey });
        return s;
      } catch (err) {
        throw stripeFailure(err);
      }
    },

    async changePlan(ctx: ActorContext, customerId: string, subscriptionId: string, planCode: string): Promise<Subscription> {
      const current = await mine(customerId, subscriptionId);
      const plan = await activePlan(planCode);
      if (current.status === 'canceled' || current.status === 'incomplete_expired') {
        throw new AppError('CONFLICT', `The subscription is ${current.status}; create a new one`);
      }
      if (!stripe.enabled || !current.stripeSubscriptionId) {
        await writeStored(current.id, async (trx) => {
          await repo.updateLocal(trx, current.id, { planId: plan.id });
          return true;
        });
      } else {
        try {
          const live = await stripe.retrieveSubscription(current.stripeSubscriptionId);
          if (!live) throw new AppError('CONFLICT', 'Stripe no longer has this subscription; run reconciliation');
          const wanted = priceIds(plan);
          const items = [
            ...live.items.filter((i) => !wanted.includes(i.priceId)).map((i) => ({ id: i.id, deleted: true })),
            ...wanted.filter((p) => !live.items.some((i) => i.priceId === p)).map((price) => ({ price })),
          ];
          const updated = await stripe.updateSubscriptionItems(
            current.stripeSubscriptionId,
            items,
            `subscription-plan-${current.id}-${plan.id}-${current.updatedAt.getTime()}`,
          );
          await db.transaction((trx) => apply(updated, now(), trx));
        } catch (err) {
          throw stripeFailure(err);
        }
      }
      const s = (await repo.find(db, current.id))!;
      await record(ctx, 'subscription.change_plan', s, { from: current.plan.code, to: plan.code });
      return s;
    },

    /** At the period's end by default; at once on request. */
    async cancel(ctx: ActorContext, customerId: string, subscriptionId: string, immediately: boolean): Promise<Subscription> {
      const current = await mine(customerId, subscriptionId);
      if (current.status === 'canceled') return current;
      if (!stripe.enabled || !current.stripeSubscriptionId) {
        await writeStored(current.id, async (trx) => {
          await repo.updateLocal(
            trx,
            current.id,
            immediately ? { status: 'canceled', canceledAt: new Date(now()), cancelAtPeriodEnd: false } : { cancelAtPeriodEnd: true },
          );
          return true;
        });
      } else {
        try {
          const updated = await stripe.cancelSubscription(
            current.stripeSubscriptionId,
            !immediately,
            `subscription-cancel-${current.id}-${immediately ? 'now' : 'period-end'}`,
          );
          await db.transaction((trx) => apply(updated, now(), trx));
        } catch (err) {
          throw stripeFailure(err);
        }
      }
      const s = (await repo.find(db, current.id))!;
      await record(ctx, 'subscription.cancel', s, { immediately });
      return s;
    },

    /**
     * Re-lists every linked customer's subscriptions in Stripe and repairs local drift: missing
     * rows are added, stale ones updated, and rows Stripe no longer has are marked canceled.
     * Returns what changed.
     */
    async reconcile(ctx: ActorContext) {
      const changes: { subscription_id: string | null; stripe_subscription_id: string; change: string; from?: string; to?: string }[] = [];
      let checked = 0;
      for (const customer of await customers.withStripeCustomer(db)) {
        const live = await stripe.listSubscriptions(customer.stripeCustomerId!);
        const seen = new Set<string>();
        for (const s of live) {
          seen.add(s.id);
          checked++;
          const before = await repo.findByStripeId(db, s.id);
          let applied: Awaited<ReturnType<typeof apply>>;
          try {
            applied = await db.transaction((trx) => apply(s, now(), trx, ctx));
          } catch (err) {
            // One subscription that cannot be applied must not stop the repair of the others; a
            // database that is gone stops it all. The detail (SQL included) goes to the log only.
            if (isDatabaseUnavailable(err)) throw err;
            logger.error({ err, stripeSubscriptionId: s.id }, 'reconciliation could not apply a subscription');
            const code = err instanceof AppError ? `${err.code}: ${err.message}` : 'INTERNAL_ERROR: the subscription could not be applied';
            changes.push({ subscription_id: before?.id ?? null, stripe_subscription_id: s.id, change: `failed: ${code}` });
            continue;
          }
          const { subscriptionId } = applied;
          const after = subscriptionId ? await repo.find(db, subscriptionId) : null;
          if (applied.outcome === 'ignored')
            changes.push({ subscription_id: subscriptionId, stripe_subscription_id: s.id, change: `ignored: ${applied.reason}` });
          else if (!before) changes.push({ subscription_id: subscriptionId, stripe_subscription_id: s.id, change: 'added', to: s.status });
          else if (
            after &&
            (before.status !== after.status ||
              before.cancelAtPeriodEnd !== after.cancelAtPeriodEnd ||
              before.planId !== after.planId ||
              before.currentPeriodEnd?.getTime() !== after.currentPeriodEnd?.getTime())
          ) {
            changes.push({ subscription_id: before.id, stripe_subscription_id: s.id, change: 'updated', from: before.status, to: after.status });
          }
        }
        for (const mineOnly of await repo.listWithStripeId(db, customer.id)) {
          if (seen.has(mineOnly.stripeSubscriptionId!) || mineOnly.status === 'canceled') continue;
          await writeStored(mineOnly.id, async (trx) => {
            await repo.updateLocal(trx, mineOnly.id, { status: 'canceled', canceledAt: new Date(now()), cancelAtPeriodEnd: false });
            return true;
          });
          changes.push({
            subscription_id: mineOnly.id,
            stripe_subscription_id: mineOnly.stripeSubscriptionId!,
            change: 'canceled: Stripe no longer has it',
            from: mineOnly.status,
            to: 'canceled',
          });
        }
      }
      await audit.recordDetached(ctx, { action: 'subscription.reconcile', outcome: 'success', details: { checked, changed: changes.length } });
      return { checked, changes };
    },
  };
}

export type SubscriptionsService = ReturnType<typeof createSubscriptionsService>;
