/**
 * Our copy of the customers' Stripe invoices: kept by the invoice webhooks (signed by stripe-node,
 * each invoice re-read from the fake Stripe through the real stripe-node client) and repaired by
 * reconciliation; read by the customer (its own, never drafts) and by admins (everything).
 */
import { randomBytes } from 'node:crypto';
import Stripe from 'stripe';
import request from 'supertest';
import { expectError } from '../helpers/envelope';
import { createCustomer, createPlan, deleteCustomer, subscribe, type CreatedCustomer } from '../helpers/factories';
import type { FakeInvoiceInput, FakeStripe } from '../helpers/fake-stripe';
import { deliverEvent, startStripeApp, WEBHOOK_TEST_SECRET as SECRET, type StripeApp } from '../helpers/stripe-app';
import { createTestApp, type TestApp } from '../helpers/test-app';

let app: StripeApp;
let stripe: FakeStripe;
let t: TestApp;
let admin: Record<string, string>;

beforeAll(async () => {
  ({ stripe, t, admin } = app = await startStripeApp({ STRIPE_TIMEOUT_MS: '500' }));
});
afterAll(() => app.close());
beforeEach(() => stripe.clearFailures());

let clock = Math.floor(Date.now() / 1000);
/** An event in Stripe's shape about the invoice as the fake holds it now (a copy: the event keeps this moment's state). */
const event = (type: string, invoiceId: string) => stripe.event(type, JSON.parse(JSON.stringify(stripe.invoices.get(invoiceId) ?? { id: invoiceId })), ++clock);

const deliver = (evt: object, to: TestApp = t) => deliverEvent(to.app, evt);

/** A customer of ours (linked to a Stripe customer in the fake, as creating one with Stripe on does). */
async function customer(): Promise<CreatedCustomer & { stripeId: string }> {
  const c = await createCustomer(t);
  const row = await t.db('customers').where({ id: c.id }).first();
  if (!row?.stripe_customer_id) throw new Error('the customer was not linked to Stripe');
  return { ...c, stripeId: row.stripe_customer_id };
}

/** A plan with a base price and a metered price for api_calls, and a customer subscribed to it in Stripe. */
async function subscribed() {
  const base = `price_${randomBytes(5).toString('hex')}`;
  const metered = `price_${randomBytes(5).toString('hex')}`;
  const plan = await createPlan(t, { stripe_price_id: base, metered_prices: { api_calls: metered } });
  const c = await customer();
  const s = await subscribe(t, { customer: c, plan });
  return { c, base, metered, subscriptionId: s.id, stripeSubscriptionId: s.body.stripe_subscription_id as string };
}

const invoiceIn = (c: { stripeId: string }, input: Partial<FakeInvoiceInput> = {}) =>
  stripe.createInvoice({ customer: c.stripeId, lines: [{ description: 'Pro', quantity: 1, amount: 4900 }], ...input }).id as string;
const copy = (stripeInvoiceId: string) => t.db('invoices').where({ stripe_invoice_id: stripeInvoiceId }).first();
const auditOf = async (eventId: string) => (await t.db('audit_log').where({ target_type: 'stripe_event', target_id: eventId }).first())!;
const mine = (c: CreatedCustomer, query = '') => request(t.app).get(`/api/invoices${query}`).set('X-API-Key', c.apiKey);
const one = (c: CreatedCustomer, id: string) => request(t.app).get(`/api/invoices/${id}`).set('X-API-Key', c.apiKey);

describe('each invoice event keeps our copy', () => {
  test('when an invoice goes from draft to paid by webhooks, then the copy follows each step, its lines carry their metric, and the audit names no URL', async () => {
    const s = await subscribed();
    const inv = stripe.invoice(s.stripeSubscriptionId, 'draft');
    const id = inv.id as string;

    const created = event('invoice.created', id);
    expect((await deliver(created).expect(200)).body.result).toBe('processed');
    expect(await copy(id)).toMatchObject({ customer_id: s.c.id, subscription_id: s.subscriptionId, status: 'draft', number: null });

    stripe.setInvoiceStatus(id, 'open');
    await deliver(event('invoice.finalized', id)).expect(200);
    const open = (await copy(id))!;
    expect(open).toMatchObject({ status: 'open', number: stripe.invoices.get(id)!.number });
    expect(open.finalized_at).not.toBeNull();
    expect(open.hosted_invoice_url).toBe(stripe.invoices.get(id)!.hosted_invoice_url);

    stripe.setInvoiceStatus(id, 'open'); // a failed attempt: Stripe counts it and plans the next
    for (const type of ['invoice.payment_failed', 'invoice.updated']) await deliver(event(type, id)).expect(200);
    expect((await copy(id))!.status).toBe('open');

    stripe.setInvoiceStatus(id, 'paid');
    const paid = event('invoice.paid', id);
    expect((await deliver(paid).expect(200)).body.result).toBe('processed');
    const row = (await copy(id))!;
    expect(row).toMatchObject({ status: 'paid', amount_paid: String(inv.amount_due), amount_remaining: '0' });
    expect(row.paid_at).not.toBeNull();

    const shown = (await one(s.c, id).expect(200)).body.invoice;
    expect(shown).toMatchObject({ id: row.id, stripe_invoice_id: id, status: 'paid', subscription_id: s.subscriptionId, amount_paid: inv.amount_due });
    const metricOf = Object.fromEntries(shown.lines.map((l: { price: string; metric: string | null }) => [l.price, l.metric]));
    expect(metricOf).toEqual({ [s.base]: null, [s.metered]: 'api_calls' });

    const audit = await auditOf(paid.id);
    expect(audit.details).toMatchObject({ invoice_id: row.id, stripe_invoice_id: id, invoice_status: 'paid', invoice_applied: 'updated' });
    expect(JSON.stringify(audit.details)).not.toMatch(/https?:/);
  });

  test.each([
    ['invoice.voided', 'void', 'voided_at'],
    ['invoice.marked_uncollectible', 'uncollectible', 'marked_uncollectible_at'],
  ] as const)('when %s arrives, then the copy is %s with its time', async (type, status, column) => {
    const c = await customer();
    const id = invoiceIn(c, { status: 'open' });
    await deliver(event('invoice.finalized', id)).expect(200);
    stripe.setInvoiceStatus(id, status);
    await deliver(event(type, id)).expect(200);
    const row = (await copy(id))!;
    expect(row.status).toBe(status);
    expect(row[column]).not.toBeNull();
  });

  test('when an uncollectible invoice is paid after all, then the copy becomes paid', async () => {
    const c = await customer();
    const id = invoiceIn(c, { status: 'uncollectible' });
    await deliver(event('invoice.marked_uncollectible', id)).expect(200);
    expect((await copy(id))!.status).toBe('uncollectible');
    stripe.setInvoiceStatus(id, 'paid');
    await deliver(event('invoice.paid', id)).expect(200);
    expect((await copy(id))!.status).toBe('paid');
  });

  test('when a draft is deleted in Stripe, then invoice.deleted deletes our copy; a finalized invoice Stripe says it lacks is kept', async () => {
    const c = await customer();
    const draft = invoiceIn(c);
    await deliver(event('invoice.created', draft)).expect(200);
    expect(await copy(draft)).toBeDefined();
    const deleted = event('invoice.deleted', draft);
    stripe.invoices.delete(draft);
    expect((await deliver(deleted).expect(200)).body.result).toBe('processed');
    expect(await copy(draft)).toBeUndefined();
    expect((await auditOf(deleted.id)).details).toMatchObject({ invoice_applied: 'deleted', stripe_invoice_id: draft });

    // Control: only a draft goes.
    const open = invoiceIn(c, { status: 'open' });
    await deliver(event('invoice.finalized', open)).expect(200);
    const gone = event('invoice.deleted', open);
    stripe.invoices.delete(open);
    await deliver(gone).expect(200);
    expect((await copy(open))!.status).toBe('open');
    expect((await auditOf(gone.id)).details.invoice_reason).toMatch(/ours is open/);
  });

  test('when the same events are delivered twice each and shuffled while Stripe moves on, then the copy ends in Stripe’s final state, each applied once', async () => {
    const s = await subscribed();
    const id = stripe.invoice(s.stripeSubscriptionId, 'draft').id as string;
    const steps: [string, 'draft' | 'open' | 'paid'][] = [
      ['invoice.created', 'draft'],
      ['invoice.finalized', 'open'],
      ['invoice.payment_failed', 'open'],
      ['invoice.updated', 'open'],
      ['invoice.paid', 'paid'],
      ['invoice.updated', 'paid'],
    ];
    const pending: ReturnType<typeof event>[] = [];
    let seed = 7;
    const random = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
    const shuffle = <T>(a: T[]) =>
      a
        .map((x) => [random(), x] as const)
        .sort((x, y) => x[0] - y[0])
        .map(([, x]) => x);
    const results: string[] = [];
    for (const [type, status] of steps) {
      if (status !== stripe.invoices.get(id)!.status || type === 'invoice.payment_failed') stripe.setInvoiceStatus(id, status);
      const e = event(type, id);
      pending.push(e, e);
      // Some of what is pending arrives now, in any order; the rest later.
      for (const late of shuffle(pending.splice(0, Math.floor(random() * pending.length)))) results.push((await deliver(late).expect(200)).body.result);
    }
    for (const late of shuffle(pending)) results.push((await deliver(late).expect(200)).body.result);

    expect(results.filter((r) => r === 'processed')).toHaveLength(steps.length);
    expect(results.filter((r) => r === 'duplicate')).toHaveLength(steps.length);
    const final = stripe.invoices.get(id)!;
    const rows = await t.db('invoices').where({ stripe_invoice_id: id });
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      status: 'paid',
      number: final.number,
      amount_paid: String(final.amount_paid),
      amount_remaining: '0',
      paid_at: new Date(final.status_transitions.paid_at * 1000),
      finalized_at: new Date(final.status_transitions.finalized_at * 1000),
    });
  });
});

describe('ordering', () => {
  test('when an older invoice.updated is delivered after invoice.paid and its re-read still sees the invoice open, then the copy stays paid', async () => {
    const c = await customer();
    const id = invoiceIn(c, { status: 'open' });
    await deliver(event('invoice.finalized', id)).expect(200);
    const before = JSON.parse(JSON.stringify(stripe.invoices.get(id))) as Record<string, unknown>;
    const older = event('invoice.updated', id);
    stripe.setInvoiceStatus(id, 'paid');
    const paid = JSON.parse(JSON.stringify(stripe.invoices.get(id))) as Record<string, unknown>;
    await deliver(event('invoice.paid', id)).expect(200);
    expect((await copy(id))!.status).toBe('paid');

    // The older event's re-read raced the payment and saw it open, though it is applied later.
    Object.assign(stripe.invoices.get(id)!, before);
    await deliver(older).expect(200);
    const row = (await copy(id))!;
    expect(row).toMatchObject({ status: 'paid', amount_remaining: '0' });
    expect((await auditOf(older.id)).details).toMatchObject({ invoice_applied: 'unchanged', invoice_reason: 'its status would move back from paid to open' });
    Object.assign(stripe.invoices.get(id)!, paid);
  });

  test('when invoice.updated is re-read after the invoice was paid, then the newer state applies (control)', async () => {
    const c = await customer();
    const id = invoiceIn(c, { status: 'open' });
    await deliver(event('invoice.finalized', id)).expect(200);
    const e = event('invoice.updated', id);
    stripe.setInvoiceStatus(id, 'paid');
    await deliver(e).expect(200);
    expect((await copy(id))!.status).toBe('paid');
    expect((await auditOf(e.id)).details).toMatchObject({ invoice_applied: 'updated', invoice_status: 'paid' });
  });

  test('when a state read earlier than the one held is applied, then it changes nothing; read later, it applies', async () => {
    const c = await customer();
    const id = invoiceIn(c, { status: 'open' });
    await deliver(event('invoice.finalized', id)).expect(200);
    const held = (await copy(id))!;
    const state = (await t.c.stripe.retrieveInvoice(id))!;
    const changed = { ...state, amountDue: state.amountDue + 100 };
    const earlier = await t.db.transaction((trx) => t.c.invoices.apply(trx, changed, held.stripe_state_at.getTime() - 1));
    expect(earlier).toMatchObject({ outcome: 'unchanged', reason: 'an older read of it than the one we hold' });
    expect((await copy(id))!.amount_due).toBe(held.amount_due);
    const later = await t.db.transaction((trx) => t.c.invoices.apply(trx, changed, held.stripe_state_at.getTime() + 1));
    expect(later).toMatchObject({ outcome: 'updated', from: 'open', to: 'open' });
    expect((await copy(id))!.amount_due).toBe(String(state.amountDue + 100));
  });

  test('when a paid invoice is offered as void, then it stays paid (both are final)', async () => {
    const c = await customer();
    const id = invoiceIn(c, { status: 'paid' });
    await deliver(event('invoice.paid', id)).expect(200);
    const state = (await t.c.stripe.retrieveInvoice(id))!;
    const r = await t.db.transaction((trx) => t.c.invoices.apply(trx, { ...state, status: 'void' }, Date.now() + 1000));
    expect(r).toMatchObject({ outcome: 'unchanged', reason: 'its status would move back from paid to void' });
    expect((await copy(id))!.status).toBe('paid');
  });
});

describe('what a customer sees', () => {
  let a: CreatedCustomer & { stripeId: string };
  let b: CreatedCustomer & { stripeId: string };
  const ids: Record<string, string> = {};
  beforeAll(async () => {
    a = await customer();
    b = await customer();
    for (const status of ['draft', 'open', 'paid', 'void'] as const) {
      ids[status] = invoiceIn(a, { status });
      await deliver(event('invoice.updated', ids[status])).expect(200);
    }
  });

  test('when a customer lists its invoices, then it sees its own, never drafts, and can filter by status', async () => {
    const res = await mine(a).expect(200);
    expect(res.body.data.map((i: { stripe_invoice_id: string }) => i.stripe_invoice_id).sort()).toEqual([ids.open, ids.paid, ids.void].sort());
    expect(res.body.next_cursor).toBeNull();
    expect((await mine(a, '?status=paid').expect(200)).body.data.map((i: { stripe_invoice_id: string }) => i.stripe_invoice_id)).toEqual([ids.paid]);
    expect((await mine(b).expect(200)).body.data).toEqual([]);
    expectError(await mine(a, '?status=draft'), 422, 'VALIDATION_FAILED');
  });

  test('when a customer asks for another customer’s invoice, by our id or Stripe’s, then 404 exactly as for a missing one; the owner gets it', async () => {
    const ours = (await copy(ids.paid!))!.id;
    const missing = await one(b, '01900000-0000-7000-8000-000000000000');
    expectError(missing, 404, 'NOT_FOUND');
    for (const ref of [ours, ids.paid!]) {
      const res = await one(b, ref);
      expectError(res, 404, 'NOT_FOUND');
      expect(res.body.error.message).toBe(missing.body.error.message);
      expect((await one(a, ref).expect(200)).body.invoice).toMatchObject({ id: ours, stripe_invoice_id: ids.paid, customer_id: a.id, status: 'paid' });
    }
  });

  test('when a customer asks for its own draft, then 404; once finalized, 200', async () => {
    const draft = invoiceIn(a);
    await deliver(event('invoice.created', draft)).expect(200);
    expectError(await one(a, draft), 404, 'NOT_FOUND');
    stripe.setInvoiceStatus(draft, 'open');
    await deliver(event('invoice.finalized', draft)).expect(200);
    expect((await one(a, draft).expect(200)).body.invoice.status).toBe('open');
  });

  test.each([
    ['an id that is neither ours nor Stripe’s', 'not-an-invoice'],
    ['a Stripe id of another object', 'sub_123'],
    ['upcoming', 'upcoming'],
  ])('when a customer asks for %s as an invoice id, then 404 NOT_FOUND as for every malformed id in a path', async (_label, id) => {
    expectError(await one(a, id), 404, 'NOT_FOUND');
  });

  test.each([
    ['a cursor that is not one', '/api/invoices?cursor=bm90LWEtY3Vyc29y', 'cursor'],
    ['a limit of 0', '/api/invoices?limit=0', 'limit'],
    ['a limit of 101', '/api/invoices?limit=101', 'limit'],
    ['a limit that is not a number', '/api/invoices?limit=ten', 'limit'],
    ['an unknown status', '/api/invoices?status=late', 'status'],
  ])('when a customer sends %s, then 422 in the envelope naming it', async (_label, path, field) => {
    const res = await request(t.app).get(path).set('X-API-Key', a.apiKey);
    expectError(res, 422, 'VALIDATION_FAILED');
    expect(res.body.error.details.map((d: { path: string }) => d.path)).toContain(field);
  });

  test('when a customer sends a limit of 1 and 100, then both are accepted (control)', async () => {
    expect((await mine(a, '?limit=1').expect(200)).body.data).toHaveLength(1);
    const all = (await mine(a).expect(200)).body.data;
    expect(all.length).toBeGreaterThan(1);
    expect((await mine(a, '?limit=100').expect(200)).body.data).toEqual(all);
  });
});

describe('paging', () => {
  test('when a customer walks its invoices page by page, then it sees each once, newest first (ties on Stripe’s second by id)', async () => {
    const c = await customer();
    const base = Math.floor(Date.now() / 1000) - 10_000;
    for (let i = 0; i < 23; i++) {
      // Three invoices share each second: the cursor must tell them apart.
      const id = invoiceIn(c, { status: i % 5 === 0 ? 'paid' : 'open', created: base + Math.floor(i / 3) });
      await deliver(event('invoice.finalized', id)).expect(200);
    }
    invoiceIn(c, { created: base + 100 }); // a draft in Stripe, never told: not ours yet
    const seen: { id: string; created_at: string }[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: request.Response = await mine(c, `?limit=5${cursor ? `&cursor=${cursor}` : ''}`).expect(200);
      seen.push(...res.body.data);
      cursor = res.body.next_cursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(5);
    expect(new Set(seen.map((i) => i.id)).size).toBe(23);
    const expected = [...seen].sort((x, y) => y.created_at.localeCompare(x.created_at) || (y.id < x.id ? -1 : 1));
    expect(seen.map((i) => i.id)).toEqual(expected.map((i) => i.id));

    // The admin's list walks the same way.
    const all: string[] = [];
    cursor = null;
    do {
      const res: request.Response = await request(t.app)
        .get(`/api/customers/${c.id}/invoices?limit=10${cursor ? `&cursor=${cursor}` : ''}`)
        .set(admin)
        .expect(200);
      all.push(...res.body.data.map((i: { id: string }) => i.id));
      cursor = res.body.next_cursor;
    } while (cursor);
    expect(all).toEqual(seen.map((i) => i.id));
  });
});

describe('admin list', () => {
  test('when an admin lists a customer’s invoices, then drafts are included; a deleted customer’s stay readable; an unknown customer is 404', async () => {
    const c = await customer();
    const draft = invoiceIn(c);
    const open = invoiceIn(c, { status: 'open' });
    for (const id of [draft, open]) await deliver(event('invoice.updated', id)).expect(200);
    const list = async () =>
      (await request(t.app).get(`/api/customers/${c.id}/invoices`).set(admin).expect(200)).body.data.map(
        (i: { stripe_invoice_id: string }) => i.stripe_invoice_id,
      );
    expect((await list()).sort()).toEqual([draft, open].sort());
    const drafts = await request(t.app).get(`/api/customers/${c.id}/invoices?status=draft`).set(admin).expect(200);
    expect(drafts.body.data.map((i: { stripe_invoice_id: string }) => i.stripe_invoice_id)).toEqual([draft]);
    await deleteCustomer(t, c.id);
    expect((await list()).sort()).toEqual([draft, open].sort());
    expectError(await request(t.app).get('/api/customers/01900000-0000-7000-8000-000000000000/invoices').set(admin), 404, 'NOT_FOUND');
    expectError(await request(t.app).get(`/api/customers/${c.id}/invoices?cursor=%%%`).set(admin), 422, 'VALIDATION_FAILED');
  });
});

describe('invoices that are not ours, and Stripe trouble', () => {
  test('when an invoice of a Stripe customer that is not ours arrives, then it is ignored with the reason and nothing is written', async () => {
    const api = new Stripe('sk_test_other_app', { host: '127.0.0.1', port: Number(new URL(stripe.url).port), protocol: 'http' });
    const theirs = await api.customers.create({ email: 'someone@other-app.example' });
    const id = invoiceIn({ stripeId: theirs.id }, { status: 'open' });
    const e = event('invoice.finalized', id);
    expect((await deliver(e).expect(200)).body.result).toBe('ignored');
    expect(await copy(id)).toBeUndefined();
    expect((await auditOf(e.id)).details).toMatchObject({ invoice_applied: 'ignored', ignored: 'no customer of ours has its Stripe customer' });
  });

  test('when Stripe fails the re-read, then 500 so Stripe retries, nothing is written, and the retry applies it', async () => {
    const c = await customer();
    const id = invoiceIn(c, { status: 'open' });
    const e = event('invoice.finalized', id);
    // stripe-node retries a 500 itself (twice): every try fails.
    stripe.failNext(new RegExp(`^/v1/invoices/${id}$`), 3, { status: 500 });
    expectError(await deliver(e), 500, 'INTERNAL_ERROR');
    expect(await copy(id)).toBeUndefined();
    expect((await t.db('stripe_events').where({ id: e.id }).first())!.last_error).toMatch(/500.*invoice was re-read/);
    expect((await deliver(e).expect(200)).body.result).toBe('processed');
    expect((await copy(id))!.status).toBe('open');
  });

  test('when Stripe is off, then invoice events are ignored with the reason', async () => {
    const off = await createTestApp({ STRIPE_WEBHOOK_SECRET: SECRET, FORWARDER_ENABLED: 'false' });
    try {
      const e = stripe.event('invoice.finalized', { id: 'in_offline123', object: 'invoice', customer: 'cus_x', status: 'open' }, ++clock);
      const res = await deliver(e, off).expect(200);
      expect(res.body.result).toBe('ignored');
      const audit = (await off.db('audit_log').where({ target_type: 'stripe_event', target_id: e.id }).first())!;
      expect(audit.details).toMatchObject({ ignored: 'Stripe is off', invoice_applied: 'ignored' });
      expect(await off.db('invoices').where({ stripe_invoice_id: 'in_offline123' })).toEqual([]);
    } finally {
      await off.close();
    }
  });
});

describe('reconciliation', () => {
  test('when Stripe holds an invoice no webhook told of, a status change was missed and a draft was deleted, then POST /api/stripe/reconcile repairs all three', async () => {
    const c = await customer();
    const untold = invoiceIn(c, { status: 'paid' });
    const missed = invoiceIn(c, { status: 'open' });
    const draft = invoiceIn(c);
    const clean = invoiceIn(c, { status: 'void' });
    for (const id of [missed, draft, clean]) await deliver(event('invoice.updated', id)).expect(200);
    stripe.setInvoiceStatus(missed, 'paid');
    stripe.invoices.delete(draft);

    const res = await request(t.app).post('/api/stripe/reconcile').set(admin).expect(200);
    expect(res.body).toMatchObject({ stripe_enabled: true, checked: expect.any(Number), changes: expect.any(Array) });
    const byStripeId = Object.fromEntries(res.body.invoices.changes.map((ch: { stripe_invoice_id: string }) => [ch.stripe_invoice_id, ch]));
    const ours = async (id: string) => (await copy(id))?.id;
    expect(byStripeId[untold]).toEqual({ invoice_id: await ours(untold), stripe_invoice_id: untold, change: 'added', to: 'paid' });
    expect(byStripeId[missed]).toEqual({ invoice_id: await ours(missed), stripe_invoice_id: missed, change: 'updated', from: 'open', to: 'paid' });
    expect(byStripeId[draft]).toMatchObject({ stripe_invoice_id: draft, change: 'deleted: Stripe no longer has it', from: 'draft' });
    expect(byStripeId[clean]).toBeUndefined();
    expect(res.body.invoices.checked).toBeGreaterThanOrEqual(3);
    expect((await copy(untold))!.status).toBe('paid');
    expect((await copy(missed))!.status).toBe('paid');
    expect(await copy(draft)).toBeUndefined();
    expect((await mine(c).expect(200)).body.data.map((i: { stripe_invoice_id: string }) => i.stripe_invoice_id).sort()).toEqual([untold, missed, clean].sort());

    const again = await request(t.app).post('/api/stripe/reconcile').set(admin).expect(200);
    expect(again.body.invoices.changes.filter((ch: { stripe_invoice_id: string }) => [untold, missed, draft, clean].includes(ch.stripe_invoice_id))).toEqual(
      [],
    );
  });

  test('when listing a customer’s invoices in Stripe fails, then the reconcile answers 502 in the envelope; once Stripe answers again, 200', async () => {
    await customer();
    stripe.failAlways(/^\/v1\/invoices$/, { status: 500 });
    expectError(await request(t.app).post('/api/stripe/reconcile').set(admin), 502, 'BAD_GATEWAY');
    stripe.clearFailures();
    await request(t.app).post('/api/stripe/reconcile').set(admin).expect(200);
  });
});
