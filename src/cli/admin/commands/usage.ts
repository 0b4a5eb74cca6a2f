import fs from 'node:fs';
import type { Command, OptionValues } from '@commander-js/extra-typings';
import type { Answer, UsageBundleAnswer, UsageReport } from '../admin-client';
import { usageChart } from '../chart';
import { action, type Ctx, type Deps, type Program } from '../context';
import { jsonText, printable, table } from '../io';
import { UsageError } from '../failure';
import { dateFlag, monthAfter } from '../dates';
import { openPrivateFile } from '../key-file';
import { usageArchiveCommands } from './usage-archives';

type Row = UsageReport['rows'][number];

const rowsTable = (rows: Row[], first: 'customer_id' | 'day') =>
  table(rows, [
    first === 'day' ? { header: 'day', value: (r: Row) => r.day } : { header: 'customer', value: (r: Row) => r.customer_id },
    { header: 'metric', value: (r) => r.metric },
    { header: 'quantity', value: (r) => r.quantity, right: true },
    { header: 'events', value: (r) => r.events, right: true },
  ]);

type CustomerUsage = Answer<'/api/customers/{id}/usage', 'get'>;
type Metered = CustomerUsage['metered'][string];

/** Each metered limit over the billing period: allowance, use, thresholds crossed, policy and what it means now. */
const meteredTable = (metered: CustomerUsage['metered']) =>
  table(Object.entries(metered), [
    { header: 'metric', value: ([m]: [string, Metered]) => m },
    { header: 'allowance', value: ([, s]) => s.allowance, right: true },
    { header: 'used', value: ([, s]) => s.used, right: true },
    { header: 'percent', value: ([, s]) => (s.percent === null ? '-' : `${s.percent}%`), right: true },
    { header: 'crossed', value: ([, s]) => (s.thresholds_crossed.length ? s.thresholds_crossed.map((t) => `${t}%`).join(' ') : '-') },
    { header: 'overage', value: ([, s]) => s.overage },
    { header: 'blocks at', value: ([, s]) => s.blocks_at ?? 'never', right: true },
    { header: 'state', value: ([, s]) => s.state },
  ]);

const period = <A extends unknown[], O extends OptionValues, G extends OptionValues>(cmd: Command<A, O, G>) =>
  cmd
    .option('--from <date>', 'start of the period, included (YYYY-MM-DD or a date-time; default: the first of this month, UTC)', dateFlag)
    .option('--to <date>', 'end of the period, excluded (default: a month after --from, or the end of this month)', dateFlag);

/** The period asked for: --to defaults to a month after --from (the service alone would stop at the end of --from's month). */
const periodQuery = (o: { from?: string; to?: string }) => {
  const from = o.from;
  return { from, to: o.to ?? (from ? monthAfter(from) : undefined) };
};

/** A bundle file's text, or stdin's for "-". */
async function readBundle(ctx: Ctx, file: string): Promise<string> {
  try {
    return file === '-' ? await ctx.io.readStdin() : fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** What the receipt says, for the person (stderr). */
function receiptSummary(r: UsageBundleAnswer): string {
  const c = r.receipt_claims;
  const lines = [
    `Bundle ${c.bundle_id} (seq ${c.seq}) of instance ${printable(c.fingerprint)}, customer ${c.customer_id}: ${c.events} events, ` +
      `${c.applied} applied (${c.late} late, billed by a true-up), ${c.duplicates} already stored, ${c.rejected.length} rejected.`,
  ];
  if (c.missing_seq.length) lines.push(`Missing from this instance: seq ${c.missing_seq.join(', ')}. Ask the site for those files.`);
  if (c.previous_mismatch) lines.push(`Its "previous" does not match the bundle of seq ${c.seq - 1} held here.`);
  lines.push(
    r.license
      ? `A fresh license for the instance comes with it, valid until ${new Date(r.claims!.exp * 1000).toISOString()}.`
      : `No license comes with it: ${r.license_error?.code} ${printable(r.license_error?.message)}.`,
  );
  return lines.join('\n');
}

export function usageCommands(program: Program, deps: Deps): void {
  const usage = program.command('usage').description('usage reports: tables, CSV, JSON, or a chart of daily usage');

  period(usage.command('report').description('usage of all customers over a period, by customer (default) or by day'))
    .option('--metric <name>', 'only this metric')
    .option('--customer <id>', 'only this customer')
    .option('--by <grouping>', 'customer or day', 'customer')
    .option('--csv', 'the service’s CSV, unchanged')
    .option('--chart', 'daily usage drawn in the terminal, one chart per metric')
    .action(
      action(deps, async (ctx, o) => {
        if ([o.csv, o.chart, o.json].filter(Boolean).length > 1) throw new UsageError('choose one of --csv, --chart and --json');
        const by = o.by;
        if (by !== 'customer' && by !== 'day') throw new UsageError('--by takes customer or day');
        const groupBy: 'customer' | 'day' = o.chart ? 'day' : by;
        const query = {
          ...periodQuery(o),
          metric: o.metric,
          customer_id: o.customer,
          group_by: groupBy,
        };
        if (o.csv) return ctx.out(await ctx.client().usageReportCsv(query));
        const r = await ctx.client().usageReport(query);
        if (o.chart) return ctx.out(usageChart(r, { columns: ctx.io.columns, color: ctx.io.stdoutIsTTY }));
        ctx.print(r, () => {
          ctx.say(`usage from ${r.from} to ${r.to}, by ${r.group_by}`);
          if (r.rows.length) ctx.out(rowsTable(r.rows, r.group_by === 'day' ? 'day' : 'customer_id'));
          else ctx.say('no usage');
        });
      }),
    );

  period(
    usage
      .command('show <customerId>')
      .description('one customer’s totals per metric (or per day) over a period, and its metered limits over its billing period'),
  )
    .option('--by <grouping>', 'metric or day', 'metric')
    .action(
      action(deps, async (ctx, o, [id]) => {
        if (o.by !== 'metric' && o.by !== 'day') throw new UsageError('--by takes metric or day');
        const r = await ctx.client().customerUsage(id, { ...periodQuery(o), group_by: o.by });
        ctx.print(r, () => {
          ctx.say(`usage of ${r.customer_id} from ${r.from} to ${r.to}`);
          if (!r.totals.length) ctx.say('no usage');
          else
            ctx.out(
              r.group_by === 'day'
                ? rowsTable(r.totals, 'day')
                : table(r.totals, [
                    { header: 'metric', value: (t) => t.metric },
                    { header: 'quantity', value: (t) => t.quantity, right: true },
                    { header: 'events', value: (t) => t.events, right: true },
                  ]),
            );
          if (Object.keys(r.metered).length === 0) return;
          ctx.say(`metered limits, billing period ${r.billing_period.start} to ${r.billing_period.end}`);
          ctx.out(meteredTable(r.metered));
        });
      }),
    );

  usage
    .command('import-bundle <customerId> <file>')
    .description(
      'upload a usage bundle an air-gapped site sent (its file, or - for stdin) for the customer; the answer (the signed receipt and a fresh license, to send back to the site) is printed as JSON, or written to --out',
    )
    .option('--out <file>', 'write the answer (receipt and license) to this file, created readable by you only (0600), not to stdout')
    .action(
      action(deps, async (ctx, o, [id, file]) => {
        const bundle = await readBundle(ctx, file);
        const out = typeof o.out === 'string' ? openPrivateFile(o.out, 'the receipt') : null;
        try {
          const r = await ctx.client().importUsageBundle(id, bundle);
          if (out) {
            out.replace(jsonText(r));
            ctx.say(`${receiptSummary(r)}\nThe receipt and the license are in ${out.path} (readable by you only): send it back to the site.`);
          } else {
            ctx.out(jsonText(r));
            ctx.say(receiptSummary(r));
          }
        } finally {
          out?.close();
        }
      }),
    );

  usageArchiveCommands(usage, deps);
}
