import type { Invoice } from '../admin-client';
import { action, int, printPages, type Deps, type Program } from '../context';
import { UsageError } from '../failure';
import { csv, table, type Column } from '../io';
import { progress } from '../progress';

const STATUSES = ['draft', 'open', 'paid', 'void', 'uncollectible'] as const;

/*
 * Amounts in the currency's minor units, as the service (and Stripe) give them. Stripe's invoice
 * page and PDF links are left out of tables and CSV files, which travel further than a terminal:
 * --json has them.
 */
const columns: Column<Invoice>[] = [
  { header: 'id', value: (i) => i.id },
  { header: 'number', value: (i) => i.number ?? '-' },
  { header: 'status', value: (i) => i.status },
  { header: 'currency', value: (i) => i.currency },
  { header: 'total', value: (i) => i.total, right: true },
  { header: 'due', value: (i) => i.amount_due, right: true },
  { header: 'paid', value: (i) => i.amount_paid, right: true },
  { header: 'remaining', value: (i) => i.amount_remaining, right: true },
  { header: 'created', value: (i) => i.created_at },
  { header: 'stripe', value: (i) => i.stripe_invoice_id },
];
const csvColumns: Column<Invoice>[] = [
  ...columns.map((c) => ({
    ...c,
    header: c.header === 'stripe' ? 'stripe_invoice_id' : c.header,
    value: (i: Invoice) => (c.header === 'number' ? i.number : c.value(i)),
  })),
  { header: 'period_start', value: (i) => i.period.start },
  { header: 'period_end', value: (i) => i.period.end },
  { header: 'due_date', value: (i) => i.due_date },
  { header: 'paid_at', value: (i) => i.paid_at },
  { header: 'subscription_id', value: (i) => i.subscription_id },
];

/** `billing-admin invoices ...`: a customer's invoices as Stripe issued them (drafts included). */
export function invoicesCommands(program: Program, deps: Deps): void {
  const invoices = program.command('invoices').description('a customer’s invoices, as Stripe issued them (our copy, kept by webhooks and reconciliation)');

  invoices
    .command('list')
    .description('a customer’s invoices, newest first, drafts included (one page; --all follows every page)')
    .requiredOption('--customer <id>', 'the customer')
    .option('--status <status>', `only invoices in this status (${STATUSES.join(', ')})`)
    .option('--limit <n>', 'rows per page (1-100)', int(1, 100))
    .option('--cursor <cursor>', 'start at this page')
    .option('--all', 'follow every page')
    .option('--csv', 'CSV (a header line, then one line per invoice; amounts in minor units)')
    .action(
      action(deps, async (ctx, o) => {
        if (o.csv && o.json) throw new UsageError('choose one of --csv and --json');
        if (o.status !== undefined && !(STATUSES as readonly string[]).includes(o.status)) throw new UsageError(`--status takes ${STATUSES.join(', ')}`);
        const query = { status: o.status as (typeof STATUSES)[number] | undefined, limit: o.limit };
        const fetchPage = (cursor: string | undefined) => ctx.client().listInvoices(o.customer, { ...query, cursor });
        if (!o.csv) return printPages(ctx, o, fetchPage, (rows: Invoice[]) => table(rows, columns), 'invoices', progress(ctx.io, 'invoices'));
        const rows: Invoice[] = [];
        let next: string | null = null;
        for await (const page of ctx.client().pages(fetchPage, o.cursor, o.all ? Infinity : 1)) {
          rows.push(...page.data);
          next = page.next_cursor;
        }
        ctx.out(csv(rows, csvColumns));
        if (!o.all && next) ctx.say(`more: --cursor ${next} (or --all)`);
      }),
    );
}
