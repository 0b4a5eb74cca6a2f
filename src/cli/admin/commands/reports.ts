import type { Command } from '@commander-js/extra-typings';
import { action, type Deps, type Program } from '../context';
import { details, table } from '../io';

export function reportsCommands(program: Program, deps: Deps): void {
  const forwarding = program.command('forwarding').description('the usage outbox towards Stripe');

  forwarding
    .command('status', { isDefault: true })
    .description('backlog by state, and the latest failed events (the default)')
    .action(
      action(deps, async (ctx) => {
        const r = await ctx.client().forwarding();
        ctx.print(r, () => {
          ctx.out(
            details([
              ['stripe', r.stripe_enabled ? 'on' : 'off (usage kept as local)'],
              ['pending', r.pending],
              ['due', r.due],
              ['failed', r.failed],
              ['local', r.local],
              ['sent', r.sent],
              ['oldest pending', r.oldest_pending_at ?? '-'],
            ]),
          );
          if (!r.recent_failures.length) return;
          ctx.out('\nrecent failures:\n');
          ctx.out(
            table(r.recent_failures, [
              { header: 'event', value: (f) => f.id },
              { header: 'customer', value: (f) => f.customer_id },
              { header: 'metric', value: (f) => f.metric },
              { header: 'quantity', value: (f) => f.quantity, right: true },
              { header: 'attempts', value: (f) => f.attempts, right: true },
              { header: 'last error', value: (f) => f.last_error ?? '' },
            ]),
          );
          ctx.say('queue them again with: billing-admin forwarding retry [event-id ...]');
        });
      }),
    );

  forwarding
    .command('retry [eventIds...]')
    .description('queue failed events for forwarding again: the ids given, or every failed one')
    .action(
      action(deps, async (ctx, _o, [ids]) => {
        const r = await ctx.client().retryForwarding(ids.length ? { event_ids: ids } : {});
        ctx.print(r, () => ctx.say(`Queued ${r.requeued} event(s) again.`));
      }),
    );
}

/**
 * `webhooks stripe`, the default of the `webhooks` group (webhooks.ts), so `billing-admin webhooks`
 * still reports on Stripe's webhooks in, as it did before endpoints out had commands of their own.
 */
export function stripeWebhooksReportCommand(webhooks: Command<[], Record<string, unknown>>, deps: Deps): void {
  webhooks
    .command('stripe', { isDefault: true })
    .description('Stripe webhooks in: counts, and the events that failed with their last error (the default)')
    .action(
      action(deps, async (ctx) => {
        const r = await ctx.client().webhooks();
        ctx.print(r, () => {
          ctx.out(
            details([
              ['processed', r.processed],
              ['failing', r.failing],
            ]),
          );
          if (!r.failing_events.length) return;
          ctx.out('\nfailing events (Stripe retries them):\n');
          ctx.out(
            table(r.failing_events, [
              { header: 'event', value: (e) => e.id },
              { header: 'type', value: (e) => e.type },
              { header: 'object', value: (e) => e.object_id ?? '' },
              { header: 'attempts', value: (e) => e.attempts, right: true },
              { header: 'received', value: (e) => e.received_at },
              { header: 'last error', value: (e) => e.last_error ?? '' },
            ]),
          );
        });
      }),
    );
}
