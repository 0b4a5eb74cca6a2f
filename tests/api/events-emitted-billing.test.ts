/**
 * Events written by customers, API keys and subscriptions managed here (Stripe off): each change
 * writes its event in its own transaction, with the object as the API then shows it; a change that
 * cannot commit (a failure injected at COMMIT, after the event was written) or is refused writes
 * none; a secret never appears in any event.
 */
import request from 'supertest';
import { createCustomer, createPlan, issueKey, subscribe, uniqueEmail } from '../helpers/factories';
import { expectError } from '../helpers/envelope';
import { eventFaults, eventsOf, typesOf } from '../helpers/event-faults';
import { createTestApp, TestApp } from '../helpers/test-app';

let t: TestApp;
let admin: Record<string, string>;
let faults: ReturnType<typeof eventFaults>;

beforeAll(async () => {
  t = await createTestApp({ MAX_ACTIVE_KEYS_PER_CUSTOMER: '3' });
  admin = { Authorization: `Bearer ${t.adminToken}` };
  faults = eventFaults(t.db);
  await faults.install();
});
afterAll(async () => {
  await faults.uninstall();
  await t.close();
});
afterEach(() => faults.clear());

/**
 * Each change is made to fail at commit twice: through its event (an event written after the
 * change committed would leave the change behind), and through the row it changes (an event
 * committed on its own would be left behind).
 */
const EVENT_THEN_TABLE = (type: string, table: string) => [type, table];

const getCustomer = async (id: string) => (await request(t.app).get(`/api/customers/${id}`).set(admin).expect(200)).body.customer;
const listKeys = async (id: string) => (await request(t.app).get(`/api/customers/${id}/keys`).set(admin).expect(200)).body.data as Record<string, string>[];
const keyShown = async (customerId: string, keyId: string) => (await listKeys(customerId)).find((k) => k.id === keyId);
const listSubs = async (id: string) => (await request(t.app).get(`/api/customers/${id}/subscriptions`).set(admin).expect(200)).body.data as { id: string }[];
const subShown = async (customerId: string, id: string) => (await listSubs(customerId)).find((s) => s.id === id);
const secretOf = (apiKey: string) => apiKey.split('_').slice(2).join('_');
const allEventsText = async () => (await t.db.raw(`select coalesce(string_agg(e::text, ' '), '') as text from events e`)).rows[0].text as string;

describe('customers', () => {
  test('when a customer is created, then one customer.created with the customer as shown, and its first key gets api_key.created', async () => {
    const c = await createCustomer(t);
    const events = await eventsOf(t.db, c.id);
    expect(events.map((e) => e.type).sort()).toEqual(['api_key.created', 'customer.created']);
    expect(events.find((e) => e.type === 'customer.created')!.data).toEqual(await getCustomer(c.id));
    expect(events.find((e) => e.type === 'api_key.created')!.data).toEqual(await keyShown(c.id, c.keyId));
    expect(await allEventsText()).not.toContain(secretOf(c.apiKey));
  });

  test('when a creation cannot commit after its event was written, then neither the customer nor any event is kept', async () => {
    const email = uniqueEmail('rollback');
    const before = Number((await t.db('events').count<{ n: string }[]>({ n: '*' }))[0]!.n);
    for (const fault of EVENT_THEN_TABLE('customer.created', 'customers')) {
      await faults.failEmail(fault, email);
      expectError(await request(t.app).post('/api/customers').set(admin).send({ email, company_name: 'Rollback Ltd' }), 500, 'INTERNAL_ERROR');
      await faults.clear();
      expect(await t.db('customers').where({ email })).toEqual([]);
      expect(Number((await t.db('events').count<{ n: string }[]>({ n: '*' }))[0]!.n)).toBe(before);
    }
    // Control: the same request now commits, with its events.
    const ok = await request(t.app).post('/api/customers').set(admin).send({ email, company_name: 'Rollback Ltd' }).expect(201);
    expect((await typesOf(t.db, ok.body.customer.id)).sort()).toEqual(['api_key.created', 'customer.created']);
  });

  test('when a customer is updated, then one customer.updated with the customer as shown; a refused update writes none', async () => {
    const c = await createCustomer(t);
    const other = await createCustomer(t);
    const taken = await request(t.app).patch(`/api/customers/${c.id}`).set(admin).send({ email: other.email });
    expectError(taken, 409, 'EMAIL_TAKEN');
    expect(await eventsOf(t.db, c.id, 'customer.updated')).toEqual([]);

    await request(t.app).patch(`/api/customers/${c.id}`).set(admin).send({ company_name: 'Renamed Ltd' }).expect(200);
    const updated = await eventsOf(t.db, c.id, 'customer.updated');
    expect(updated).toHaveLength(1);
    expect(updated[0]!.data).toEqual(await getCustomer(c.id));
    expect(updated[0]!.data.company_name).toBe('Renamed Ltd');
  });

  test('when an update cannot commit after its event was written, then the customer is unchanged and no event is kept', async () => {
    const c = await createCustomer(t);
    for (const fault of EVENT_THEN_TABLE('customer.updated', 'customers')) {
      await faults.fail(fault, c.id);
      expectError(await request(t.app).patch(`/api/customers/${c.id}`).set(admin).send({ company_name: 'Never' }), 500, 'INTERNAL_ERROR');
      expect((await getCustomer(c.id)).company_name).toBe('Acme Ltd');
      expect(await eventsOf(t.db, c.id, 'customer.updated')).toEqual([]);
      await faults.clear();
    }
  });

  test('when a customer is deleted, then one customer.deleted and one api_key.revoked per key it revoked; deleting again writes none', async () => {
    const c = await createCustomer(t);
    const second = await issueKey(t, c.id, { keep_existing: true, name: 'site B' });
    await request(t.app).delete(`/api/customers/${c.id}`).set(admin).expect(200);
    const deleted = await eventsOf(t.db, c.id, 'customer.deleted');
    expect(deleted).toHaveLength(1);
    expect(deleted[0]!.data).toEqual(await getCustomer(c.id));
    expect(deleted[0]!.data.status).toBe('deleted');
    const revoked = await eventsOf(t.db, c.id, 'api_key.revoked');
    expect(revoked.map((e) => e.data.id).sort()).toEqual([c.keyId, second.keyId].sort());
    for (const e of revoked) expect(e.data).toEqual(await keyShown(c.id, e.data.id as string));

    await request(t.app).delete(`/api/customers/${c.id}`).set(admin).expect(200);
    expect(await eventsOf(t.db, c.id, 'customer.deleted')).toHaveLength(1);
    expect(await eventsOf(t.db, c.id, 'api_key.revoked')).toHaveLength(2);
  });

  test('when a deletion cannot commit after its event was written, then the customer and its keys stay active and no event is kept', async () => {
    const c = await createCustomer(t);
    for (const fault of EVENT_THEN_TABLE('customer.deleted', 'api_keys')) {
      await faults.fail(fault, c.id);
      expectError(await request(t.app).delete(`/api/customers/${c.id}`).set(admin), 500, 'INTERNAL_ERROR');
      expect((await getCustomer(c.id)).status).toBe('active');
      expect(await keyShown(c.id, c.keyId)).toMatchObject({ status: 'active' });
      expect(await typesOf(t.db, c.id)).not.toContain('customer.deleted');
      expect(await typesOf(t.db, c.id)).not.toContain('api_key.revoked');
      await request(t.app).get('/api/me').set('X-API-Key', c.apiKey).expect(200);
      await faults.clear();
    }
  });
});

describe('API keys', () => {
  test('when a key is added beside the others, then one api_key.created with the key as shown, never its secret', async () => {
    const c = await createCustomer(t);
    const added = await issueKey(t, c.id, { keep_existing: true, name: 'site B' });
    const created = (await eventsOf(t.db, c.id, 'api_key.created')).filter((e) => e.data.id === added.keyId);
    expect(created).toHaveLength(1);
    expect(created[0]!.data).toEqual(await keyShown(c.id, added.keyId));
    expect(await allEventsText()).not.toContain(secretOf(added.apiKey));
  });

  test('when a key is rotated with a grace period, then one api_key.rotated with the new key, the key it replaces and the grace end', async () => {
    const c = await createCustomer(t);
    const rotated = await issueKey(t, c.id, { grace_period_seconds: 3600 });
    const events = await eventsOf(t.db, c.id, 'api_key.rotated');
    expect(events).toHaveLength(1);
    const old = await keyShown(c.id, c.keyId);
    expect(events[0]!.data).toEqual({
      ...(await keyShown(c.id, rotated.keyId)),
      replaced_key_ids: [c.keyId],
      grace_ends_at: old!.expires_at,
    });
    expect(Date.parse(events[0]!.data.grace_ends_at as string) - Date.now()).toBeGreaterThan(3500_000);
    // Nothing else: the new key is told by api_key.rotated alone, the old one keeps working until the grace ends.
    expect(await typesOf(t.db, c.id)).toEqual(expect.not.arrayContaining(['api_key.revoked']));
    expect(await allEventsText()).not.toContain(secretOf(rotated.apiKey));
  });

  test('when a key is rotated without grace, then api_key.rotated names the key revoked now as its grace end', async () => {
    const c = await createCustomer(t);
    const rotated = await issueKey(t, c.id, { grace_period_seconds: 0 });
    const [event] = await eventsOf(t.db, c.id, 'api_key.rotated');
    const old = (await keyShown(c.id, c.keyId))!;
    expect(event!.data).toEqual({ ...(await keyShown(c.id, rotated.keyId)), replaced_key_ids: [c.keyId], grace_ends_at: old.revoked_at });
  });

  test('when an issue is refused (too many keys) or cannot commit, then no key event is written', async () => {
    const c = await createCustomer(t);
    await issueKey(t, c.id, { keep_existing: true });
    await issueKey(t, c.id, { keep_existing: true });
    const before = await typesOf(t.db, c.id);
    expectError(await request(t.app).post(`/api/customers/${c.id}/keys`).set(admin).send({ keep_existing: true }), 409, 'TOO_MANY_KEYS');
    expect(await typesOf(t.db, c.id)).toEqual(before);

    for (const fault of EVENT_THEN_TABLE('api_key.rotated', 'api_keys')) {
      await faults.fail(fault, c.id);
      expectError(await request(t.app).post(`/api/customers/${c.id}/keys`).set(admin).send({ grace_period_seconds: 0 }), 500, 'INTERNAL_ERROR');
      expect(await typesOf(t.db, c.id)).toEqual(before);
      expect((await listKeys(c.id)).filter((k) => k.status === 'active')).toHaveLength(3);
      await faults.clear();
    }
  });

  test('when a key is revoked, then one api_key.revoked with the key as shown; revoking it again writes none', async () => {
    const c = await createCustomer(t);
    const extra = await issueKey(t, c.id, { keep_existing: true });
    await request(t.app).delete(`/api/customers/${c.id}/keys/${extra.keyId}`).set(admin).expect(200);
    const revoked = await eventsOf(t.db, c.id, 'api_key.revoked');
    expect(revoked).toHaveLength(1);
    expect(revoked[0]!.data).toEqual(await keyShown(c.id, extra.keyId));
    expect(revoked[0]!.data.status).toBe('revoked');
    await request(t.app).delete(`/api/customers/${c.id}/keys/${extra.keyId}`).set(admin).expect(200);
    expect(await eventsOf(t.db, c.id, 'api_key.revoked')).toHaveLength(1);
  });

  test('when a revocation cannot commit after its event was written, then the key still works and no event is kept', async () => {
    const c = await createCustomer(t);
    for (const fault of EVENT_THEN_TABLE('api_key.revoked', 'api_keys')) {
      await faults.fail(fault, c.id);
      expectError(await request(t.app).delete(`/api/customers/${c.id}/keys/${c.keyId}`).set(admin), 500, 'INTERNAL_ERROR');
      expect(await eventsOf(t.db, c.id, 'api_key.revoked')).toEqual([]);
      await request(t.app).get('/api/me').set('X-API-Key', c.apiKey).expect(200);
      await faults.clear();
    }
  });

  test('when keys are rotated in bulk, then each customer gets one api_key.rotated; a run that cannot commit writes none for anyone', async () => {
    const a = await createCustomer(t);
    const b = await createCustomer(t);
    for (const fault of EVENT_THEN_TABLE('api_key.rotated', 'api_keys')) {
      await faults.fail(fault, b.id);
      const refused = await request(t.app)
        .post('/api/keys/rotate')
        .set(admin)
        .send({ grace_period_seconds: 60, customer_ids: [a.id, b.id] });
      expectError(refused, 500, 'INTERNAL_ERROR');
      expect(await eventsOf(t.db, a.id, 'api_key.rotated')).toEqual([]);
      expect(await listKeys(a.id)).toHaveLength(1);
      await faults.clear();
    }

    const res = await request(t.app)
      .post('/api/keys/rotate')
      .set(admin)
      .send({ grace_period_seconds: 60, customer_ids: [a.id, b.id] })
      .expect(200);
    for (const [c, key] of [
      [a, res.body.keys.find((k: { customer_id: string }) => k.customer_id === a.id)],
      [b, res.body.keys.find((k: { customer_id: string }) => k.customer_id === b.id)],
    ] as const) {
      const events = await eventsOf(t.db, c.id, 'api_key.rotated');
      expect(events).toHaveLength(1);
      const old = (await keyShown(c.id, c.keyId))!;
      expect(events[0]!.data).toEqual({ ...(await keyShown(c.id, key.key.id)), replaced_key_ids: [c.keyId], grace_ends_at: old.expires_at });
      expect(await allEventsText()).not.toContain(secretOf(key.api_key));
    }
  });
});

describe('subscriptions managed here (Stripe off)', () => {
  test('when a subscription is created, changed and canceled, then created, updated and canceled, each with the subscription as shown', async () => {
    const s = await subscribe(t);
    const created = await eventsOf(t.db, s.customerId, 'subscription.created');
    expect(created).toHaveLength(1);
    expect(created[0]!.data).toEqual(await subShown(s.customerId, s.id));

    const other = await createPlan(t);
    await request(t.app).patch(`/api/customers/${s.customerId}/subscriptions/${s.id}`).set(admin).send({ plan: other }).expect(200);
    const updated = await eventsOf(t.db, s.customerId, 'subscription.updated');
    expect(updated).toHaveLength(1);
    expect(updated[0]!.data).toEqual(await subShown(s.customerId, s.id));
    expect((updated[0]!.data.plan as { code: string }).code).toBe(other);

    await request(t.app).delete(`/api/customers/${s.customerId}/subscriptions/${s.id}`).set(admin).expect(200);
    expect(await eventsOf(t.db, s.customerId, 'subscription.updated')).toHaveLength(2); // cancel_at_period_end
    await request(t.app).delete(`/api/customers/${s.customerId}/subscriptions/${s.id}?immediately=true`).set(admin).expect(200);
    const canceled = await eventsOf(t.db, s.customerId, 'subscription.canceled');
    expect(canceled).toHaveLength(1);
    expect(canceled[0]!.data).toEqual(await subShown(s.customerId, s.id));
    // Canceling a canceled subscription changes nothing.
    await request(t.app).delete(`/api/customers/${s.customerId}/subscriptions/${s.id}?immediately=true`).set(admin).expect(200);
    expect((await typesOf(t.db, s.customerId)).filter((x) => x.startsWith('subscription.'))).toEqual([
      'subscription.created',
      'subscription.updated',
      'subscription.updated',
      'subscription.canceled',
    ]);
  });

  test('when a subscription change cannot commit after its event was written, then nothing changed and no event is kept', async () => {
    const c = await createCustomer(t);
    const plan = await createPlan(t);
    for (const fault of EVENT_THEN_TABLE('subscription.created', 'subscriptions')) {
      await faults.fail(fault, c.id);
      expectError(await request(t.app).post(`/api/customers/${c.id}/subscriptions`).set(admin).send({ plan }), 500, 'INTERNAL_ERROR');
      expect(await t.db('subscriptions').where({ customer_id: c.id })).toEqual([]);
      await faults.clear();
    }

    const s = await subscribe(t, { customer: c, plan });
    for (const fault of EVENT_THEN_TABLE('subscription.canceled', 'subscriptions')) {
      await faults.fail(fault, c.id);
      expectError(await request(t.app).delete(`/api/customers/${c.id}/subscriptions/${s.id}?immediately=true`).set(admin), 500, 'INTERNAL_ERROR');
      expect(await subShown(c.id, s.id)).toMatchObject({ status: 'active' });
      expect((await typesOf(t.db, c.id)).filter((x) => x.startsWith('subscription.'))).toEqual(['subscription.created']);
      await faults.clear();
    }
  });

  test('when a local subscription set to cancel reaches its period end, then the read that ends it writes one subscription.canceled', async () => {
    const s = await subscribe(t);
    await request(t.app).delete(`/api/customers/${s.customerId}/subscriptions/${s.id}`).set(admin).expect(200);
    await t
      .db('subscriptions')
      .where({ id: s.id })
      .update({ current_period_end: new Date(Date.now() - 1000) });
    const shown = await subShown(s.customerId, s.id);
    expect(shown).toMatchObject({ status: 'canceled' });
    const canceled = await eventsOf(t.db, s.customerId, 'subscription.canceled');
    expect(canceled).toHaveLength(1);
    expect(canceled[0]!.data).toEqual(shown);
    await subShown(s.customerId, s.id);
    expect(await eventsOf(t.db, s.customerId, 'subscription.canceled')).toHaveLength(1);
  });
});
