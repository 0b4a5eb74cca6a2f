import type { BillingEvent, WebhookDelivery } from '../admin-client';
import { action, int, printPages, type Deps, type Program } from '../context';
import { details, table } from '../io';
import { progress } from '../progress';

const eventTable = (rows: BillingEvent[]) =>
  table(rows, [
    { header: 'id', value: (e) => e.id },
    { header: 'type', value: (e) => e.type },
    { header: 'customer', value: (e) => e.customer_id ?? '-' },
    { header: 'created', value: (e) => e.created_at },
  ]);

const deliveryTable = (rows: WebhookDelivery[]) =>
  table(rows, [
    { header: 'delivery', value: (d) => d.id },
    { header: 'endpoint', value: (d) => d.endpoint_id },
    { header: 'state', value: (d) => d.state },
    { header: 'next attempt', value: (d) => d.next_attempt_at ?? '-' },
  ]);

/** `billing-admin events ...`: the event log, and sending an event again. Returns the group. */
export function eventsCommands(program: Program, deps: Deps) {
  const events = program.command('events').description('the event log: what happened, as webhook endpoints receive it (list, show, resend)');

  events
    .command('list')
    .description('list events, newest first')
    .option('--type <type>', 'one event type, or every type of one object (license.*)')
    .option('--customer <id>', 'events about this customer')
    .option('--cursor <eventId>', 'start after this event: the events older than it (a page’s next cursor; the API’s `after`)')
    .option('--limit <n>', 'rows per page (1-100)', int(1, 100))
    .option('--all', 'follow every page')
    .action(
      action(deps, async (ctx, o) => {
        const query = { type: o.type as never, customer_id: o.customer, limit: o.limit };
        await printPages(ctx, o, (after) => ctx.client().listEvents({ ...query, after }), eventTable, 'events', progress(ctx.io, 'events'));
      }),
    );

  events
    .command('show <id>')
    .description('show one event and its data')
    .action(
      action(deps, async (ctx, _o, [id]) => {
        const r = await ctx.client().getEvent(id);
        ctx.print(r, () =>
          ctx.out(
            details([
              ['id', r.event.id],
              ['type', r.event.type],
              ['customer', r.event.customer_id ?? '-'],
              ['created', r.event.created_at],
            ]) + `data\n${JSON.stringify(r.event.data, null, 2)}\n`,
          ),
        );
      }),
    );

  events
    .command('resend <id>')
    .description('deliver an event again, now and with a fresh retry schedule: to one endpoint, or to every enabled endpoint that wants it')
    .option('--endpoint <id>', 'to this endpoint only (even one whose filter does not take the event)')
    .action(
      action(deps, async (ctx, o, [id]) => {
        const r = await ctx.client().resendEvent(id, o.endpoint !== undefined ? { endpoint_id: o.endpoint } : {});
        ctx.print(r, () => {
          if (r.deliveries.length === 0) return ctx.say(`Event ${id} was queued to no endpoint: none enabled wants it.`);
          ctx.out(deliveryTable(r.deliveries));
          ctx.say(`Event ${id} queued again to ${r.deliveries.length} endpoint${r.deliveries.length === 1 ? '' : 's'}.`);
        });
      }),
    );

  return events;
}
