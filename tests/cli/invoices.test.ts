/** billing-admin invoices list: a customer's invoices as a table, the service's JSON, or CSV, against a real service. */
import { createCustomer, insertInvoice } from '../helpers/factories';
import { cli, serviceJson, startService, type Service } from './cli-harness';

let s: Service;
let env: Record<string, string>;
let customerId: string;
const held: { id: string; stripeInvoiceId: string }[] = [];
beforeAll(async () => {
  s = await startService();
  env = { BILLING_API_URL: s.url, ADMIN_API_TOKEN: s.t.adminToken };
  customerId = (await createCustomer(s.t)).id;
  const base = Date.UTC(2026, 9, 1);
  const statuses = ['paid', 'paid', 'open', 'void', 'draft'] as const;
  for (const [i, status] of statuses.entries())
    held.push(await insertInvoice(s.t, customerId, { status, created: new Date(base + i * 86_400_000), total: 1000 + i }));
  // A number a spreadsheet would run as a formula.
  await s.t.db('invoices').where({ id: held[0]!.id }).update({ number: '=HYPERLINK("https://evil.example")' });
});
afterAll(() => s.close());

const newestFirst = () => [...held].reverse();

describe('billing-admin invoices list', () => {
  test('when listed, then a table of every invoice, drafts included, newest first, with no Stripe link', async () => {
    const r = await cli(['invoices', 'list', '--customer', customerId], { env });
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+NUMBER\s+STATUS\s+CURRENCY\s+TOTAL\s+DUE\s+PAID\s+REMAINING\s+CREATED\s+STRIPE$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual(newestFirst().map((h) => h.id));
    expect(lines.slice(1).map((l) => l.split(/\s+/)[2])).toEqual(['draft', 'void', 'open', 'paid', 'paid']);
    expect(r.stdout).not.toContain('invoice.stripe.com');
  });

  test('when --json, then the service’s JSON unchanged; with --status and --limit, that page, and --cursor fetches the next', async () => {
    const r = await cli(['--json', 'invoices', 'list', '--customer', customerId, '--status', 'paid', '--limit', '1'], { env });
    expect(r.code).toBe(0);
    const page = JSON.parse(r.stdout);
    expect(page).toEqual(await serviceJson(s, `/api/customers/${customerId}/invoices?status=paid&limit=1`));
    expect(page.data.map((i: { id: string }) => i.id)).toEqual([held[1]!.id]);
    expect(page.next_cursor).toEqual(expect.any(String));

    const next = await cli(['invoices', 'list', '--customer', customerId, '--status', 'paid', '--limit', '1', '--cursor', page.next_cursor], { env });
    expect(next.stdout).toContain(held[0]!.id);
    expect(next.stdout).not.toContain(held[1]!.id);
  });

  test('when --csv --all, then one CSV of every invoice, numbers unquoted, and a formula-looking cell defused', async () => {
    const r = await cli(['invoices', 'list', '--customer', customerId, '--csv', '--all', '--limit', '2'], { env });
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\r\n');
    expect(lines.pop()).toBe('');
    expect(lines[0]).toBe(
      'id,number,status,currency,total,due,paid,remaining,created,stripe_invoice_id,period_start,period_end,due_date,paid_at,subscription_id',
    );
    expect(lines).toHaveLength(6);
    expect(lines.slice(1).map((l) => l.split(',')[0])).toEqual(newestFirst().map((h) => h.id));
    const oldest = lines[5]!;
    expect(oldest).toContain(`"'=HYPERLINK(""https://evil.example"")"`);
    expect(oldest).toContain(',1000,1000,1000,0,');
    expect(r.stdout).not.toContain('invoice.stripe.com');
  });

  test('when the status, limit or customer is wrong, then it is refused: 64 before any request, 1 for an unknown customer', async () => {
    expect((await cli(['invoices', 'list', '--customer', customerId, '--status', 'late'], { env })).code).toBe(64);
    expect((await cli(['invoices', 'list', '--customer', customerId, '--limit', '101'], { env })).code).toBe(64);
    expect((await cli(['invoices', 'list'], { env })).code).toBe(64);
    expect((await cli(['--json', 'invoices', 'list', '--customer', customerId, '--csv'], { env })).code).toBe(64);
    const unknown = await cli(['invoices', 'list', '--customer', '01900000-0000-7000-8000-000000000000'], { env });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/not found/i);
  });
});
