import type { LateUsageReport } from '../admin-client';
import { action, int, type Deps, type Program } from '../context';
import { dateFlag } from '../dates';
import { UsageError } from '../failure';
import { jsonText, table } from '../io';
import { progress } from '../progress';

type TrueUp = LateUsageReport['data'][number];
type Total = LateUsageReport['totals'][number];

const STATES = ['pending', 'sent', 'failed', 'local'] as const;

const trueUpsTable = (rows: TrueUp[]) =>
  table(rows, [
    { header: 'true-up', value: (t) => t.id },
    { header: 'customer', value: (t) => t.customer_id },
    { header: 'metric', value: (t) => t.metric },
    { header: 'quantity', value: (t) => t.quantity, right: true },
    { header: 'events', value: (t) => t.events, right: true },
    { header: 'occurred', value: (t) => `${t.occurred_from.slice(0, 10)}..${t.occurred_to.slice(0, 10)}` },
    { header: 'state', value: (t) => t.state },
    { header: 'attempts', value: (t) => t.attempts, right: true },
    { header: 'invoice item / last error', value: (t) => t.stripe_invoice_item_id ?? t.last_error ?? '' },
  ]);

const totalsTable = (totals: Total[]) =>
  table(totals, [
    { header: 'metric', value: (t) => t.metric },
    { header: 'quantity', value: (t) => t.quantity, right: true },
    { header: 'events', value: (t) => t.events, right: true },
  ]);

/** `reports late` and `reports late-retry`: late usage billed by true-ups (docs/STRIPE.md, Late usage). */
export function lateUsageCommands(program: Program, deps: Deps): void {
  const reports = program.command('reports').description('reports: late usage billed by true-ups');

  reports
    .command('late')
    .description('late usage billed by true-ups (one per bundle and metric), newest first, with totals per metric')
    .option('--customer <id>', 'only this customer')
    .option('--metric <name>', 'only this metric')
    .option('--state <state>', `only true-ups in this state (${STATES.join(', ')})`)
    .option('--from <date>', 'recorded (uploaded) at or after this date or date-time', dateFlag)
    .option('--to <date>', 'recorded before this date or date-time', dateFlag)
    .option('--limit <n>', 'rows per page (1-200)', int(1, 200))
    .option('--cursor <cursor>', 'start at this page')
    .option('--all', 'follow every page')
    .option('--csv', 'the service’s CSV, unchanged (every true-up the filters match)')
    .action(
      action(deps, async (ctx, o) => {
        if (o.csv && o.json) throw new UsageError('choose one of --csv and --json');
        if (o.state !== undefined && !(STATES as readonly string[]).includes(o.state)) throw new UsageError(`--state takes ${STATES.join(', ')}`);
        const filter = { customer_id: o.customer, metric: o.metric, state: o.state as (typeof STATES)[number] | undefined, from: o.from, to: o.to };
        if (o.csv) return ctx.out(await ctx.client().lateUsageCsv(filter));
        const shown = progress(ctx.io, 'true-ups');
        const rows: TrueUp[] = [];
        let first: LateUsageReport | undefined;
        let last: LateUsageReport | undefined;
        let pages = 0;
        try {
          for await (const page of ctx
            .client()
            .pages((cursor) => ctx.client().lateUsage({ ...filter, limit: o.limit, cursor }), o.cursor, o.all ? Infinity : 1)) {
            first ??= page;
            last = page;
            pages++;
            if (ctx.json) ctx.out(o.all ? `${JSON.stringify(page)}\n` : jsonText(page));
            else rows.push(...page.data);
            shown.update(rows.length, pages);
          }
        } finally {
          shown.done();
        }
        if (ctx.json) return;
        if (rows.length) ctx.out(trueUpsTable(rows));
        else ctx.say('no late usage');
        if (first?.totals.length) ctx.out(`\ntotals (every page):\n${totalsTable(first.totals)}`);
        if (!o.all && last?.next_cursor) ctx.say(`more: --cursor ${last.next_cursor} (or --all)`);
        if (rows.some((t) => t.state === 'failed'))
          ctx.say('bill failed ones again, once their cause is fixed: billing-admin reports late-retry [true-up-id ...]');
      }),
    );

  reports
    .command('late-retry [ids...]')
    .description('queue failed true-ups for billing again, with a fresh budget of attempts: the ids given, or every failed one')
    .action(
      action(deps, async (ctx, _o, [ids]) => {
        const r = await ctx.client().retryLateUsage(ids.length ? { ids } : {});
        ctx.print(r, () => ctx.say(`Queued ${r.requeued} true-up(s) again.`));
      }),
    );
}
