import type { Knex } from 'knex';
import type { PlanRow, SubscriptionRow } from '../../db/tables';
import type { StripeSubscriptionState } from '../../stripe/stripe-port';
import type { LocalState, Subscription } from './subscription-types';

const SELECT = `s.*, p.code as plan_code, p.name as plan_name, p.entitlements as plan_entitlements`;

/** A subscription with its plan, as SELECT reads it. */
type JoinedRow = SubscriptionRow & { plan_code: PlanRow['code']; plan_name: PlanRow['name']; plan_entitlements: PlanRow['entitlements'] };

const toSubscription = (r: JoinedRow): Subscription => ({
  id: r.id,
  customerId: r.customer_id,
  planId: r.plan_id,
  plan: { code: r.plan_code, name: r.plan_name, entitlements: r.plan_entitlements },
  stripeSubscriptionId: r.stripe_subscription_id,
  status: r.status,
  currentPeriodStart: r.current_period_start,
  currentPeriodEnd: r.current_period_end,
  cancelAtPeriodEnd: r.cancel_at_period_end,
  canceledAt: r.canceled_at,
  trialEnd: r.trial_end,
  paymentFailingSince: r.payment_failing_since ?? null,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

/** The state's columns; with a partial state, only those given (undefined is not written). */
const stateColumns = (s: Partial<LocalState>) => ({
  status: s.status,
  current_period_start: s.currentPeriodStart,
  current_period_end: s.currentPeriodEnd,
  cancel_at_period_end: s.cancelAtPeriodEnd,
  canceled_at: s.canceledAt,
  trial_end: s.trialEnd,
});

/** Statuses in which payment is failing: the moment one is entered is kept, and cleared on leaving them. */
const FAILING = `('past_due', 'unpaid')`;

export const fromStripe = (s: StripeSubscriptionState): LocalState => ({
  status: s.status,
  currentPeriodStart: s.currentPeriodStart,
  currentPeriodEnd: s.currentPeriodEnd,
  cancelAtPeriodEnd: s.cancelAtPeriodEnd,
  canceledAt: s.canceledAt,
  trialEnd: s.trialEnd,
});

export function createSubscriptionsRepository() {
  // The aliases leave Knex without the table types: each read names its row type.
  const byId = (db: Knex) => db('subscriptions as s').join('plans as p', 'p.id', 's.plan_id').select(db.raw(SELECT));

  return {
    async find(db: Knex, id: string, customerId?: string): Promise<Subscription | null> {
      const q = byId(db).where('s.id', id);
      if (customerId) q.where('s.customer_id', customerId);
      const row = (await q.first()) as JoinedRow | undefined;
      return row ? toSubscription(row) : null;
    },

    /** The subscription, its row locked until the caller's transaction ends. */
    async findForUpdate(db: Knex, id: string): Promise<Subscription | null> {
      const row = (await byId(db).where('s.id', id).forUpdate('s').first()) as JoinedRow | undefined;
      return row ? toSubscription(row) : null;
    },

    /**
     * Serialises the writers of one Stripe subscription until the caller's transaction ends, whether
     * or not its row exists yet: each then reads the state it changes, and its events describe
     * exactly that change.
     */
    async lockStripeId(db: Knex, stripeSubscriptionId: string): Promise<void> {
      await db.raw(`select pg_advisory_xact_lock(hashtext('subscriptions.stripe_subscription_id'), hashtext(?))`, [stripeSubscriptionId]);
    },

    async findByStripeId(db: Knex, stripeSubscriptionId: string): Promise<Subscription | null> {
      const row = (await byId(db).where('s.stripe_subscription_id', stripeSubscriptionId).first()) as JoinedRow | undefined;
      return row ? toSubscription(row) : null;
    },

    async listForCustomer(db: Knex, customerId: string): Promise<Subscription[]> {
      const rows = (await byId(db).where('s.customer_id', customerId).orderBy('s.id', 'desc')) as JoinedRow[];
      return rows.map(toSubscription);
    },

    async listWithStripeId(db: Knex, customerId: string): Promise<Subscription[]> {
      const rows = (await byId(db).where('s.customer_id', customerId).whereNotNull('s.stripe_subscription_id')) as JoinedRow[];
      return rows.map(toSubscription);
    },

    async countForCustomer(db: Knex, customerId: string): Promise<number> {
      const row = await db('subscriptions').where({ customer_id: customerId }).count<{ n: string }>({ n: '*' }).first();
      return Number(row?.n ?? 0);
    },

    async insertLocal(db: Knex, s: { id: string; customerId: string; planId: string } & LocalState): Promise<void> {
      await db('subscriptions').insert({
        id: s.id,
        customer_id: s.customerId,
        plan_id: s.planId,
        status: s.status,
        current_period_start: s.currentPeriodStart,
        current_period_end: s.currentPeriodEnd,
        cancel_at_period_end: s.cancelAtPeriodEnd,
        canceled_at: s.canceledAt,
        trial_end: s.trialEnd,
      });
    },

    async updateLocal(db: Knex, id: string, changes: Partial<LocalState> & { planId?: string }): Promise<void> {
      // Knex leaves out the columns whose value is undefined: only the changes given are written.
      const failing =
        changes.status === undefined
          ? {}
          : { payment_failing_since: db.raw(`case when ? in ${FAILING} then coalesce(payment_failing_since, now()) end`, [changes.status]) };
      await db('subscriptions')
        .where({ id })
        .update({ ...(changes.planId ? { plan_id: changes.planId } : {}), ...stateColumns(changes), ...failing, updated_at: db.fn.now() });
    },

    /**
     * A local subscription's next state (renewed, or ended at its period end), written only if its
     * period is still the one it was read with: of two instances renewing at once, one writes and
     * the other finds the row already moved. Returns whether this call wrote it.
     */
    async advanceLocal(db: Knex, id: string, readPeriodEnd: Date, next: Partial<LocalState>): Promise<boolean> {
      const rows = await db('subscriptions')
        .where({ id, current_period_end: readPeriodEnd })
        .whereNull('stripe_subscription_id')
        .update({ ...stateColumns(next), updated_at: db.fn.now() })
        .returning('id');
      return rows.length > 0;
    },

    /**
     * Stripe's state for one subscription, applied only if it is newer than what we hold
     * (stateAt: when we read it from Stripe, ms). Inserts the row if we never saw it.
     * Returns 'inserted', 'updated' or 'stale'.
     */
    async applyStripeState(
      db: Knex,
      a: { id: string; customerId: string; planId: string; stripeSubscriptionId: string; state: LocalState; stateAt: number },
    ): Promise<'inserted' | 'updated' | 'stale'> {
      const { rows }: { rows: { inserted: boolean }[] } = await db.raw(
        `insert into subscriptions as s (id, customer_id, plan_id, stripe_subscription_id, status, current_period_start,
                                         current_period_end, cancel_at_period_end, canceled_at, trial_end, stripe_state_at,
                                         payment_failing_since)
         values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, case when ?::text in ${FAILING} then to_timestamp(?::double precision / 1000) end)
         on conflict (stripe_subscription_id) do update set
           plan_id = excluded.plan_id, status = excluded.status, current_period_start = excluded.current_period_start,
           current_period_end = excluded.current_period_end, cancel_at_period_end = excluded.cancel_at_period_end,
           canceled_at = excluded.canceled_at, trial_end = excluded.trial_end, stripe_state_at = excluded.stripe_state_at,
           payment_failing_since = case when excluded.status in ${FAILING} then coalesce(s.payment_failing_since, excluded.payment_failing_since) end,
           updated_at = now()
         where s.stripe_state_at is null or s.stripe_state_at <= excluded.stripe_state_at
         returning (xmax = 0) as inserted`,
        [
          a.id,
          a.customerId,
          a.planId,
          a.stripeSubscriptionId,
          a.state.status,
          a.state.currentPeriodStart,
          a.state.currentPeriodEnd,
          a.state.cancelAtPeriodEnd,
          a.state.canceledAt,
          a.state.trialEnd,
          a.stateAt,
          a.state.status,
          a.stateAt,
        ],
      );
      const [row] = rows;
      if (!row) return 'stale';
      return row.inserted ? 'inserted' : 'updated';
    },
  };
}

export type SubscriptionsRepository = ReturnType<typeof createSubscriptionsRepository>;
