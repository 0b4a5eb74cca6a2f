import request from 'supertest';
import { uuidv7 } from '../../src/lib/ids';
import type { EventType } from '../../src/modules/events/event-types';
import { eventIdSource } from '../../src/modules/events/events-service';
import { expectError } from '../helpers/envelope';
import { createWebhookEndpoint, emitEvent, uniqueEmail } from '../helpers/factories';
import { createTestApp, TestApp } from '../helpers/test-app';

let t: TestApp;
let admin: Record<string, string>;
const endpointIds: string[] = [];
beforeAll(async () => {
  t = await createTestApp();
  admin = { Authorization: `Bearer ${t.adminToken}` };
});
afterAll(async () => {
  // Endpoints wanting every event would get deliveries from every later test file: leave none behind.
  await t.db('webhook_endpoints').whereIn('id', endpointIds).delete();
  await t.close();
});

/** A customer row written directly: no service, so no event of its own among the ones a test counts. */
async function bareCustomer(): Promise<string> {
  const id = uuidv7();
  await t.db('customers').insert({ id, email: uniqueEmail('events'), company_name: 'Events Ltd' });
  return id;
}

async function endpoint(events: string[]): Promise<string> {
  const { id } = await createWebhookEndpoint(t, { events });
  endpointIds.push(id);
  return id;
}

const list = (query: Record<string, string | number>) => request(t.app).get('/api/events').query(query).set(admin);
const deliveriesOfAny = (eventId: string) => t.db('webhook_deliveries').where({ event_id: eventId }).whereIn('endpoint_id', endpointIds).pluck('endpoint_id');

describe('GET /api/events', () => {
  test('when a customer has several events, then they come newest first, a page at a time, each page continuing after the last', async () => {
    const customerId = await bareCustomer();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await emitEvent(t, { customerId, data: { n: i } }));
    const pages: string[][] = [];
    let after: string | undefined;
    for (;;) {
      const res = await list({ customer_id: customerId, limit: 2, ...(after ? { after } : {}) });
      expect(res.status).toBe(200);
      pages.push(res.body.data.map((e: { id: string }) => e.id));
      if (!res.body.next_cursor) break;
      expect(res.body.next_cursor).toBe(res.body.data[1].id); // the cursor is the last event's id
      after = res.body.next_cursor;
    }
    expect(pages).toEqual([[ids[4], ids[3]], [ids[2], ids[1]], [ids[0]]]);
  });

  test('when an event is listed or fetched, then it is {id, type, created_at, customer_id, data} with data as stored', async () => {
    const customerId = await bareCustomer();
    const data = { customer: { id: customerId, email: 'x@example.com' }, nested: [1, 'two', null] };
    const id = await emitEvent(t, { type: 'customer.updated', customerId, data });
    const listed = (await list({ customer_id: customerId })).body.data[0];
    const one = await request(t.app).get(`/api/events/${id}`).set(admin);
    expect(one.status).toBe(200);
    expect(one.body.event).toEqual(listed);
    expect(Object.keys(listed)).toEqual(['id', 'type', 'created_at', 'customer_id', 'data']);
    expect(listed).toMatchObject({ id, type: 'customer.updated', customer_id: customerId, data });
    expect(id).toMatch(/^evt_[0-9a-f]{32}$/);
    expect(Math.abs(Date.parse(listed.created_at) - Date.now())).toBeLessThan(60_000);
  });

  test('when filtered by type, then an exact type gives only it and `<object>.*` every type of that object', async () => {
    const customerId = await bareCustomer();
    const emitted: Record<string, string> = {};
    for (const type of ['customer.updated', 'license.grace_started', 'license.expired', 'instance.activated'] as EventType[]) {
      emitted[type] = await emitEvent(t, { type, customerId });
    }
    const ids = async (type: string) => (await list({ customer_id: customerId, type })).body.data.map((e: { id: string }) => e.id);
    expect(await ids('license.*')).toEqual([emitted['license.expired'], emitted['license.grace_started']]);
    expect(await ids('license.expired')).toEqual([emitted['license.expired']]);
    expect(await ids('instance.*')).toEqual([emitted['instance.activated']]);
    expect(await ids('subscription.*')).toEqual([]);
    // Without a type filter: all four.
    expect((await list({ customer_id: customerId })).body.data).toHaveLength(4);
  });

  test('when events without a customer exist, then the customer filter leaves them out and the unfiltered list has them', async () => {
    const id = await emitEvent(t, { type: 'usage.forwarding_failed', customerId: null, data: { count: 3, reason: 'test' } });
    const customerId = await bareCustomer();
    expect((await list({ customer_id: customerId })).body.data).toEqual([]);
    const res = await list({ type: 'usage.forwarding_failed', limit: 100 });
    expect(res.body.data.map((e: { id: string }) => e.id)).toContain(id);
    expect(res.body.data.find((e: { id: string }) => e.id === id).customer_id).toBeNull();
  });

  test.each([
    [{ type: 'license.nope' }, 'type'],
    [{ type: '*' }, 'type'],
    [{ type: 'license.%' }, 'type'],
    [{ customer_id: 'not-a-uuid' }, 'customer_id'],
    [{ after: 'evt_123' }, 'after'],
    [{ after: "evt_' or 1=1" }, 'after'],
    [{ limit: 0 }, 'limit'],
    [{ limit: 101 }, 'limit'],
    [{ limit: 'ten' }, 'limit'],
    [{ cursor: 'abc' }, 'cursor'],
  ])('when the query is %j, then 422 names %s', async (query, field) => {
    const res = await list(query);
    expectError(res, 422, 'VALIDATION_FAILED');
    expect(res.body.error.message).toBe('Invalid request query');
    // The field is named: as the path of its problem, or (an unknown one) in the message.
    expect(JSON.stringify(res.body.error.details)).toContain(field);
  });

  test('when the query is right at the edges, then it is accepted (control)', async () => {
    for (const q of [{ limit: 1 }, { limit: 100 }, { type: 'webhook_endpoint.*' }, { after: `evt_${'f'.repeat(32)}` }] as Record<string, string | number>[]) {
      expect((await list(q)).status).toBe(200);
    }
    // The default page is 20.
    const customerId = await bareCustomer();
    for (let i = 0; i < 21; i++) await emitEvent(t, { customerId });
    const res = await list({ customer_id: customerId });
    expect(res.body.data).toHaveLength(20);
    expect(res.body.next_cursor).not.toBeNull();
  });
});

describe('GET /api/events/:id', () => {
  test('when the id is well formed but unknown, then 404 NOT_FOUND', async () => {
    expectError(
      await request(t.app)
        .get(`/api/events/evt_${'0'.repeat(32)}`)
        .set(admin),
      404,
      'NOT_FOUND',
    );
  });

  test.each(['123', 'evt_XYZ', `evt_${'0'.repeat(31)}`, `EVT_${'0'.repeat(32)}`, '%00'])(
    'when the id is malformed (%s), then 404 as for any id',
    async (id) => {
      expectError(await request(t.app).get(`/api/events/${id}`).set(admin), 404, 'NOT_FOUND');
    },
  );
});

describe('events are written with their change', () => {
  test('when the transaction that emits an event rolls back, then neither the event nor any delivery exists; committed, both do', async () => {
    const all = await endpoint(['*']);
    const customerId = await bareCustomer();
    let rolledBack: string | undefined;
    await expect(
      t.db.transaction(async (trx) => {
        [rolledBack] = await t.c.events.emit(trx, { type: 'customer.updated', customerId, data: {} });
        throw new Error('the change fails');
      }),
    ).rejects.toThrow('the change fails');
    expect(rolledBack).toMatch(/^evt_/);
    expect(await t.db('events').where({ id: rolledBack! }).first()).toBeUndefined();
    expect(await t.db('webhook_deliveries').where({ event_id: rolledBack! })).toEqual([]);
    expect((await list({ customer_id: customerId })).body.data).toEqual([]);

    const committed = await emitEvent(t, { type: 'customer.updated', customerId });
    expect(await t.db('events').where({ id: committed }).first()).toBeDefined();
    expect(await deliveriesOfAny(committed)).toContain(all);
  });

  test('when several events are emitted at once, then each is written, in order, with its own id', async () => {
    const customerId = await bareCustomer();
    const ids = await t.db.transaction((trx) =>
      t.c.events.emit(trx, [
        { type: 'instance.activated', customerId, data: { n: 1 } },
        { type: 'instance.limit_reached', customerId, data: { n: 2 } },
      ]),
    );
    expect(new Set(ids).size).toBe(2);
    const rows = await t.db('events').whereIn('id', ids).orderBy('id');
    expect(rows.map((r) => [r.id, r.type, r.data])).toEqual([
      [ids[0], 'instance.activated', { n: 1 }],
      [ids[1], 'instance.limit_reached', { n: 2 }],
    ]);
  });

  test('when an event is emitted, then only enabled endpoints whose filter matches (*, <object>.*, the exact type) get a pending delivery', async () => {
    const before = [...endpointIds];
    const everything = await endpoint(['*']);
    const licenses = await endpoint(['license.*']);
    const exact = await endpoint(['license.expired']);
    const customers = await endpoint(['customer.*', 'api_key.created']);
    const otherLicense = await endpoint(['license.grace_started']);
    const disabled = await endpoint(['*', 'license.expired']);
    const off = await request(t.app).patch(`/api/webhook-endpoints/${disabled}`).set(admin).send({ disabled: true });
    expect(off.status).toBe(200);
    const mine = [everything, licenses, exact, customers, otherLicense, disabled];
    const deliveriesOf = async (eventId: string) => (await deliveriesOfAny(eventId)).filter((id) => mine.includes(id));
    expect(before.every((id) => !mine.includes(id))).toBe(true);

    const expired = await emitEvent(t, { type: 'license.expired' });
    expect((await deliveriesOf(expired)).sort()).toEqual([everything, licenses, exact].sort());
    const rows = await t.db('webhook_deliveries').where({ event_id: expired }).whereIn('endpoint_id', endpointIds);
    expect(rows.every((r) => r.state === 'pending' && r.attempts === 0)).toBe(true);

    const keyCreated = await emitEvent(t, { type: 'api_key.created' });
    expect((await deliveriesOf(keyCreated)).sort()).toEqual([everything, customers].sort());
    expect(await deliveriesOf(keyCreated)).not.toContain(otherLicense);

    // Enabled again, it gets the next event (not the ones it missed).
    await request(t.app).patch(`/api/webhook-endpoints/${disabled}`).set(admin).send({ disabled: false });
    const next = await emitEvent(t, { type: 'license.expired' });
    expect((await deliveriesOf(next)).sort()).toEqual([everything, licenses, exact, disabled].sort());
    expect(await deliveriesOf(expired)).not.toContain(disabled);
  });

  test('when many events are made in one millisecond, then their ids still sort in the order they were made', () => {
    const next = eventIdSource();
    const ids = Array.from({ length: 5000 }, () => next(1_800_000_000_000));
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.every((id) => /^evt_[0-9a-f]{12}7[0-9a-f]{3}[89ab][0-9a-f]{15}$/.test(id))).toBe(true);
    // A clock that steps back a little never makes an id older than one already made...
    expect(next(1_800_000_000_000 - 500) > ids[ids.length - 1]!).toBe(true);
    // ...one set back further (a test clock, a corrected clock) starts again from its own time: an id says when.
    const back = next(1_700_000_000_000);
    expect(back.slice(4, 16)).toBe((1_700_000_000_000).toString(16).padStart(12, '0'));
  });
});

describe('retention (EVENT_RETENTION_DAYS)', () => {
  const age = (ids: string[], days: number) => t.db.raw(`update events set created_at = now() - make_interval(days => ?) where id = any(?)`, [days, ids]);
  const existing = async (ids: string[]) => (await t.db('events').whereIn('id', ids).pluck('id')).sort();
  // Endpoints of other tests (this file's, other files') may want these events too: settle what they are owed.
  const settle = (ids: string[]) => t.db('webhook_deliveries').whereIn('event_id', ids).update({ state: 'delivered' });

  test('when events are older than the retention, then they are deleted with their deliveries and attempts; newer ones and ones still owed a delivery stay', async () => {
    const ep = await endpoint(['instance.released']);
    const oldDelivered = await emitEvent(t, { type: 'instance.released' });
    const oldFailed = await emitEvent(t, { type: 'instance.released' });
    const oldPending = await emitEvent(t, { type: 'instance.released' });
    const oldNoDelivery = await emitEvent(t, { type: 'subscription.past_due' });
    const young = await emitEvent(t, { type: 'instance.released' });
    const justInside = await emitEvent(t, { type: 'subscription.past_due' });
    await settle([oldDelivered, oldFailed, oldNoDelivery]);
    await t.db('webhook_deliveries').where({ event_id: oldPending }).whereNot({ endpoint_id: ep }).update({ state: 'delivered' });
    await age([oldDelivered, oldFailed, oldPending, oldNoDelivery], 31);
    await age([justInside], 29);
    await t.db('webhook_deliveries').where({ event_id: oldDelivered, endpoint_id: ep }).update({ state: 'delivered', delivered_at: t.db.fn.now() });
    await t.db('webhook_deliveries').where({ event_id: oldFailed, endpoint_id: ep }).update({ state: 'failed' });
    const delivery = await t.db('webhook_deliveries').where({ event_id: oldDelivered, endpoint_id: ep }).first();
    await t.db('webhook_attempts').insert({
      delivery_id: delivery!.id,
      endpoint_id: ep,
      event_id: oldDelivered,
      outcome: 'delivered',
      status: 200,
      duration_ms: 12,
      response_body: 'ok',
      error: null,
    });

    const deleted = await t.c.eventRetention.run();
    expect(deleted).toBeGreaterThanOrEqual(3);
    expect(await existing([oldDelivered, oldFailed, oldPending, oldNoDelivery, young, justInside])).toEqual([oldPending, young, justInside].sort());
    expect(await t.db('webhook_deliveries').whereIn('event_id', [oldDelivered, oldFailed])).toEqual([]);
    expect(await t.db('webhook_attempts').where({ event_id: oldDelivered })).toEqual([]);
    expect(await t.db('webhook_deliveries').where({ event_id: oldPending, endpoint_id: ep, state: 'pending' })).toHaveLength(1);
    expect(t.logs.join('')).toMatch(/expired events deleted/);

    // Once its delivery is settled, the old event goes too.
    await t.db('webhook_deliveries').where({ event_id: oldPending }).update({ state: 'delivered' });
    await t.c.eventRetention.run();
    expect(await existing([oldPending, young, justInside])).toEqual([young, justInside].sort());
  });

  test('when many events expire, then they are deleted in bounded batches, and a run stops after its batch budget', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await emitEvent(t, { type: 'customer.updated' }));
    await settle(ids);
    await age(ids, 40);
    const repo = t.c.events;
    expect(await repo.purgeExpired({ batchSize: 2, maxBatches: 1 })).toBe(2);
    expect(await existing(ids)).toHaveLength(3);
    // Oldest first: the two deleted were the two oldest (same age: the batch takes any two).
    expect(await repo.purgeExpired({ batchSize: 2 })).toBeGreaterThanOrEqual(3);
    expect(await existing(ids)).toEqual([]);
  });

  test('when the retention is longer, then the same events are kept (the setting is read)', async () => {
    const long = await createTestApp({ EVENT_RETENTION_DAYS: '60' });
    try {
      const id = await emitEvent(long);
      await settle([id]);
      await age([id], 45);
      await long.c.eventRetention.run();
      expect(await existing([id])).toEqual([id]);
      await age([id], 61);
      await long.c.eventRetention.run();
      expect(await existing([id])).toEqual([]);
    } finally {
      await long.close();
    }
  });

  test('when the job is started and stopped, then stop waits for a run under way and no timer is left', async () => {
    const job = t.c.eventRetention;
    job.start();
    job.start(); // twice: still one timer
    const run = job.run();
    await job.stop();
    await expect(run).resolves.toEqual(expect.any(Number));
  });
});
