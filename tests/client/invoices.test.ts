/**
 * BillingClient.invoices() and .invoice() against the real service served over HTTP: the customer's
 * own invoices page by page, one by either id, and the service's refusals as BillingApiError.
 */
import { BillingApiError, BillingClient, type Invoice } from '../../packages/client';
import { createCustomer, insertInvoice, type CreatedCustomer } from '../helpers/factories';
import { serve, stop, type Served } from '../helpers/served-app';

let s: Served;
beforeAll(async () => {
  s = await serve({});
});
afterAll(() => stop(s));

const client = (c: CreatedCustomer) => new BillingClient({ baseUrl: s.url, apiKey: c.apiKey, maxRetries: 0 });

describe('invoices', () => {
  let a: CreatedCustomer;
  let b: CreatedCustomer;
  const held: { id: string; stripeInvoiceId: string }[] = [];
  beforeAll(async () => {
    a = await createCustomer(s.t);
    b = await createCustomer(s.t);
    const base = Date.UTC(2026, 10, 1);
    for (let i = 0; i < 7; i++) held.push(await insertInvoice(s.t, a.id, { status: i % 2 ? 'paid' : 'open', created: new Date(base + i * 86_400_000) }));
    await insertInvoice(s.t, a.id, { status: 'draft', created: new Date(base + 30 * 86_400_000) });
  });

  test('when a customer pages through its invoices, then it gets each once, newest first, drafts never, and nextCursor ends null', async () => {
    const seen: Invoice[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await client(a).invoices({ limit: 3, cursor });
      seen.push(...page.data);
      cursor = page.nextCursor ?? undefined;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen.map((i) => i.id)).toEqual([...held].reverse().map((h) => h.id));
    expect(seen.every((i) => i.customer_id === a.id && i.status !== 'draft')).toBe(true);
    const paid = await client(a).invoices({ status: 'paid' });
    expect(paid.data.map((i) => i.status)).toEqual(['paid', 'paid', 'paid']);
    expect(paid.nextCursor).toBeNull();
  });

  test('when a customer reads one invoice by our id or by Stripe’s, then it gets it; another customer gets 404 NOT_FOUND', async () => {
    const [first] = held;
    expect((await client(a).invoice(first!.id)).stripe_invoice_id).toBe(first!.stripeInvoiceId);
    expect((await client(a).invoice(first!.stripeInvoiceId)).id).toBe(first!.id);
    await expect(client(b).invoice(first!.id)).rejects.toMatchObject({ status: 404, code: 'NOT_FOUND' });
    expect((await client(b).invoices()).data).toEqual([]);
  });

  test('when a customer sends a malformed id, then BillingApiError 404; a bad limit, 422 naming the field', async () => {
    const err = await client(a)
      .invoice('../customers')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BillingApiError);
    expect(err).toMatchObject({ status: 404, code: 'NOT_FOUND' });
    await expect(client(a).invoices({ limit: 101 })).rejects.toMatchObject({ status: 422, details: [expect.objectContaining({ path: 'limit' })] });
  });
});
