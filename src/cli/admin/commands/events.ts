import type { BillingEvent } from '../admin-client';
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

/** `billing-admin events ...`: the event log. Returns the group, so `events resend` hangs below it too. */
export function eventsCommands(program: Program, deps: Deps) {
  const events = program.command('events').description('the event log: what happened, as webhook endpoints receive it (list, show)');

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

  return events;
}
