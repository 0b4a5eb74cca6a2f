import type { Subscription } from '../admin-client';
import { action, int, type Deps, type Program } from '../context';
import { details, table } from '../io';

const subscriptionTable = (rows: Subscription[]) =>
  table(rows, [
    { header: 'id', value: (s) => s.id },
    { header: 'plan', value: (s) => s.plan.code },
    { header: 'status', value: (s) => s.status },
    { header: 'period end', value: (s) => s.current_period_end ?? '-' },
    { header: 'cancels', value: (s) => (s.cancel_at_period_end ? 'at period end' : s.canceled_at ? `canceled ${s.canceled_at}` : '-') },
    { header: 'trial end', value: (s) => s.trial_end ?? '-' },
    { header: 'stripe', value: (s) => s.stripe_subscription_id ?? '-' },
  ]);

const subscriptionDetails = (s: Subscription) =>
  details([
    ['id', s.id],
    ['customer', s.customer_id],
    ['plan', `${s.plan.code} (${s.plan.name})`],
    ['status', s.status],
    ['period', `${s.current_period_start ?? '-'} .. ${s.current_period_end ?? '-'}`],
    ['cancel at period end', s.cancel_at_period_end ? 'yes' : 'no'],
    ['canceled', s.canceled_at ?? '-'],
    ['trial end', s.trial_end ?? '-'],
    ['stripe subscription', s.stripe_subscription_id ?? '-'],
  ]);

export function subscriptionsCommands(program: Program, deps: Deps): void {
  const subs = program.command('subscriptions').description('subscribe customers to plans, change plans, cancel');

  subs
    .command('create <customerId>')
    .description('subscribe a customer to a plan (in Stripe when Stripe is on); safe to retry')
    .requiredOption('--plan <code>', 'the plan’s code')
    .option('--trial-days <n>', 'a trial of this many days (1-730)', int(1, 730))
    .option('--idempotency-key <key>', 'reuse a key to repeat a create that may have happened (default: a new one)')
    .action(
      action(deps, async (ctx, o, [id]) => {
        const r = await ctx.client().createSubscription(id, { plan: o.plan, trial_days: o.trialDays }, o.idempotencyKey);
        ctx.print(r, () => ctx.out(subscriptionDetails(r.subscription)));
      }),
    );

  subs
    .command('list <customerId>')
    .description('a customer’s subscriptions, newest first')
    .action(
      action(deps, async (ctx, _o, [id]) => {
        const r = await ctx.client().listSubscriptions(id);
        ctx.print(r, () => (r.data.length ? ctx.out(subscriptionTable(r.data)) : ctx.say('no subscriptions')));
      }),
    );

  subs
    .command('change-plan <customerId> <subscriptionId>')
    .description('move a subscription to another plan (prorated in Stripe)')
    .requiredOption('--plan <code>', 'the new plan’s code')
    .action(
      action(deps, async (ctx, o, [id, subscriptionId]) => {
        const r = await ctx.client().changePlan(id, subscriptionId, o.plan);
        ctx.print(r, () => ctx.out(subscriptionDetails(r.subscription)));
      }),
    );

  subs
    .command('cancel <customerId> <subscriptionId>')
    .description('cancel at the end of the period, or now with --immediately')
    .option('--immediately', 'cancel now rather than at the period end')
    .action(
      action(deps, async (ctx, o, [id, subscriptionId]) => {
        const r = await ctx.client().cancelSubscription(id, subscriptionId, Boolean(o.immediately));
        ctx.print(r, () => ctx.out(subscriptionDetails(r.subscription)));
      }),
    );
}
