import type { Customer } from '../admin-client';
import { action, int, printPages, type Ctx, type Deps, type Program } from '../context';
import { details, jsonText, table } from '../io';
import { openKeyFile } from '../key-file';
import { progress } from '../progress';
import { UsageError } from '../failure';
import { entitlementsCommands } from './entitlements';

export const customerTable = (rows: Customer[]) =>
  table(rows, [
    { header: 'id', value: (c) => c.id },
    { header: 'email', value: (c) => c.email },
    { header: 'company', value: (c) => c.company_name },
    { header: 'status', value: (c) => c.status },
    { header: 'created', value: (c) => c.created_at },
  ]);

const customerDetails = (c: Customer) =>
  details([
    ['id', c.id],
    ['email', c.email],
    ['company', c.company_name],
    ['status', c.status],
    ['stripe customer', c.stripe_customer_id ?? '-'],
    ['created', c.created_at],
    ['updated', c.updated_at],
    ['deleted', c.deleted_at ?? '-'],
  ]);

/**
 * A new key goes to stdout alone, so `KEY=$(billing-admin customers create ...)` captures it; the
 * rest (what was created, that the key is shown once) goes to stderr.
 */
export function printNewKey(ctx: Ctx, apiKey: string, about: string): void {
  ctx.out(`${apiKey}\n`);
  ctx.say(`${about}\nStore this API key now: it is shown this once and cannot be read again.`);
}

export const OUTPUT_HELP = 'write the new key (with --json: the answer) to this file, created readable by you only (0600), not to stdout';

/**
 * An answer carrying a new key: to stdout as printNewKey says, or with --output into a file only its
 * owner can read (a shell redirect would make it 0644), then the note on stderr.
 */
export function emitNewKey(ctx: Ctx, o: { output?: string }, body: unknown, apiKey: string, about: string): void {
  if (o.output === undefined) return ctx.print(body, () => printNewKey(ctx, apiKey, about));
  const file = openKeyFile(o.output);
  try {
    file.write(ctx.json ? jsonText(body) : `${apiKey}\n`);
  } finally {
    file.close();
  }
  ctx.say(`${about}\nThe new API key is in ${file.path} (readable by you only): it is shown this once and cannot be read again.`);
}

export function customersCommands(program: Program, deps: Deps): void {
  const customers = program.command('customers').description('create, list, show, update and delete customers; their own deals (entitlements)');

  customers
    .command('create')
    .description('create a customer and its first API key (printed once, alone on stdout)')
    .requiredOption('--email <email>', 'the customer’s email (unique)')
    .requiredOption('--company <name>', 'the company name')
    .option('--output <file>', OUTPUT_HELP)
    .action(
      action(deps, async (ctx, o) => {
        // A file that cannot take the key is refused before the key is made.
        if (typeof o.output === 'string') openKeyFile(o.output).close();
        const r = await ctx.client().createCustomer({ email: o.email, company_name: o.company });
        emitNewKey(ctx, o, r, r.api_key, `Created customer ${r.customer.id} (${r.customer.email}), key ${r.key.id}.`);
      }),
    );

  customers
    .command('list')
    .description('list customers, newest first')
    .option('--status <status>', 'active or deleted')
    .option('--email <address>', 'only the customer with this email (the whole address, any case)')
    .option('--limit <n>', 'rows per page (1-200)', int(1, 200))
    .option('--cursor <cursor>', 'start at this page (from a previous list)')
    .option('--all', 'follow every page')
    .action(
      action(deps, async (ctx, o) => {
        const query = { status: o.status as 'active' | 'deleted' | undefined, email: o.email, limit: o.limit };
        await printPages(ctx, o, (cursor) => ctx.client().listCustomers({ ...query, cursor }), customerTable, 'customers', progress(ctx.io, 'customers'));
      }),
    );

  customers
    .command('show <id>')
    .description('show one customer')
    .action(
      action(deps, async (ctx, _o, [id]) => {
        const r = await ctx.client().getCustomer(id);
        ctx.print(r, () => ctx.out(customerDetails(r.customer)));
      }),
    );

  customers
    .command('update <id>')
    .description('change a customer’s email or company name')
    .option('--email <email>', 'the new email')
    .option('--company <name>', 'the new company name')
    .action(
      action(deps, async (ctx, o, [id]) => {
        if (o.email === undefined && o.company === undefined) throw new UsageError('give --email, --company or both');
        const r = await ctx.client().updateCustomer(id, { email: o.email, company_name: o.company });
        ctx.print(r, () => ctx.out(customerDetails(r.customer)));
      }),
    );

  customers
    .command('delete <id>')
    .description('soft-delete a customer: every key revoked at once, usage and audit kept')
    .action(
      action(deps, async (ctx, _o, [id]) => {
        const r = await ctx.client().deleteCustomer(id);
        ctx.print(r, () => ctx.say(`Deleted customer ${r.customer.id} (${r.customer.email}); its keys are revoked.`));
      }),
    );

  entitlementsCommands(customers, deps);
}
