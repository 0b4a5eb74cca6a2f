/**
 * Request forgery at connection time: endpoint rows pointing at loopback, private, link-local and
 * metadata addresses in every spelling, and a name whose DNS answer is (or turns into) 127.0.0.1,
 * inserted directly, past the creation checks. Each attempt fails with a clear error and the
 * receiver listening there gets nothing; with WEBHOOK_ALLOW_PRIVATE=true (the control) the same
 * receiver gets the delivery.
 */
import type dns from 'node:dns';
import request from 'supertest';
import { systemContext } from '../../src/lib/request-context';
import { destinationProblem } from '../../src/modules/webhooks/destination-policy';
import { createDeliveryRepository } from '../../src/modules/webhooks/delivery-repository';
import { createDeliveryService, type DeliveryService } from '../../src/modules/webhooks/delivery-service';
import { createWebhookEndpointsRepository } from '../../src/modules/webhooks/webhook-endpoints-repository';
import { disableOtherEndpoints, insertEndpoint, startReceiver, webhookEnv, type Receiver } from '../helpers/delivery-fixtures';
import { createTestApp, type TestApp } from '../helpers/test-app';

let t: TestApp;
let receiver: Receiver;

/** A resolver that answers every name with these addresses, and counts its calls. */
function resolverOf(addresses: string[]) {
  const calls: string[] = [];
  const fn = ((hostname: string, _opts: unknown, cb: (err: Error | null, a: dns.LookupAddress[]) => void) => {
    calls.push(hostname);
    cb(
      null,
      addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })),
    );
  }) as unknown as typeof dns.lookup;
  return { fn, calls };
}

function service(opts: { allowPrivate: boolean; allowHttp?: boolean; resolve?: typeof dns.lookup }): DeliveryService {
  return createDeliveryService({
    db: t.db,
    repo: createDeliveryRepository(),
    endpoints: createWebhookEndpointsRepository(),
    events: t.c.events,
    audit: t.c.audit,
    secretBox: t.c.secretBox,
    logger: t.c.logger,
    settings: { ...t.c.config.webhooks, allowPrivate: opts.allowPrivate, allowHttp: opts.allowHttp ?? true },
    resolve: opts.resolve,
  });
}

beforeAll(async () => {
  // Production's rule on addresses; http stays allowed so that the address, not the scheme, is what is refused.
  t = await createTestApp(webhookEnv({ WEBHOOK_ALLOW_PRIVATE: 'false', WEBHOOK_ALLOW_HTTP: 'true' }));
  await disableOtherEndpoints(t);
  receiver = await startReceiver();
});
afterAll(async () => {
  await receiver.close();
  await t.close();
});

const endpointAt = async (url: string) => {
  const ep = await insertEndpoint(t, { url });
  receiver.secrets.push(ep.secret);
  return ep;
};

describe('literal non-public addresses, attempted through POST /api/webhook-endpoints/:id/test', () => {
  const port = () => receiver.port;
  test.each([
    ['127.0.0.1', () => `http://127.0.0.1:${port()}/hooks`, /loopback/],
    ['localhost', () => `http://localhost:${port()}/hooks`, /local or internal host name/],
    ['[::1]', () => `http://[::1]:${port()}/hooks`, /loopback/],
    ['hex 0x7f000001', () => `http://0x7f000001:${port()}/hooks`, /loopback/],
    ['decimal 2130706433', () => `http://2130706433:${port()}/hooks`, /loopback/],
    ['octal 0177.0.0.1', () => `http://0177.0.0.1:${port()}/hooks`, /loopback/],
    ['IPv4-mapped [::ffff:127.0.0.1]', () => `http://[::ffff:127.0.0.1]:${port()}/hooks`, /loopback/],
    ['10/8', () => `http://10.1.2.3:${port()}/`, /private/],
    ['172.16/12', () => `http://172.16.0.1:${port()}/`, /private/],
    ['192.168/16', () => `http://192.168.1.1:${port()}/`, /private/],
    ['the metadata address', () => 'http://169.254.169.254/latest/meta-data/', /linkLocal/],
    ['fd00::/8', () => `http://[fd00::1]:${port()}/`, /uniqueLocal/],
  ])('when an endpoint points at %s, then the attempt fails with a clear error and nothing is sent', async (_label, url, reason) => {
    const ep = await endpointAt(url());
    const res = await request(t.app).post(`/api/webhook-endpoints/${ep.id}/test`).set('Authorization', `Bearer ${t.adminToken}`).send();
    expect(res.status).toBe(200);
    expect(res.body.attempt).toMatchObject({ outcome: 'failed', status: null });
    expect(res.body.attempt.error).toMatch(/^destination refused: the URL must not point at/);
    expect(res.body.attempt.error).toMatch(reason);
    const [attempt] = await t.db('webhook_attempts').where({ endpoint_id: ep.id });
    expect(attempt).toMatchObject({ outcome: 'failed', status: null, error: res.body.attempt.error });
    expect(receiver.received).toHaveLength(0);
  });

  test('when a URL carries credentials, then it is refused even where private addresses are allowed', async () => {
    const ep = await endpointAt(`http://user:pass@127.0.0.1:${receiver.port}/hooks`);
    const r = await service({ allowPrivate: true }).test(systemContext(), ep.id);
    expect(r.attempt.error).toBe('destination refused: the URL must not carry credentials (user:password@)');
    expect(receiver.received).toHaveLength(0);
  });

  test('when http is not allowed, then an http URL is refused; https is the rule', async () => {
    const ep = await endpointAt(`http://hooks.example.com:${receiver.port}/hooks`);
    const r = await service({ allowPrivate: true, allowHttp: false }).test(systemContext(), ep.id);
    expect(r.attempt.error).toBe('destination refused: the URL must be an https URL');
    expect(receiver.received).toHaveLength(0);
  });
});

describe('names resolved at connection time', () => {
  test('when a name resolves to 127.0.0.1, then the connection is refused with a clear error and the receiver gets nothing; allowed private, the same receiver gets it (control)', async () => {
    const ep = await endpointAt(`http://hooks.customer-crm.example:${receiver.port}/hooks`);
    const dnsAnswer = resolverOf(['127.0.0.1']);
    const refused = await service({ allowPrivate: false, resolve: dnsAnswer.fn }).test(systemContext(), ep.id);
    expect(refused.attempt).toMatchObject({ outcome: 'failed', status: null });
    expect(refused.attempt.error).toBe(
      'destination refused: refused to connect to hooks.customer-crm.example: 127.0.0.1 is a loopback address, not a public one',
    );
    expect(dnsAnswer.calls).toEqual(['hooks.customer-crm.example']);
    expect(receiver.received).toHaveLength(0);

    const allowed = await service({ allowPrivate: true, resolve: dnsAnswer.fn }).test(systemContext(), ep.id);
    expect(allowed.attempt).toMatchObject({ outcome: 'delivered', status: 200, error: null });
    expect(receiver.received).toHaveLength(1);
    expect(receiver.received[0]).toMatchObject({ id: allowed.eventId, verifyError: null });
    receiver.received.length = 0;
  });

  test('when the DNS answer changes to 127.0.0.1 after the creation check, then the connection is refused', async () => {
    const url = `http://rebind.example:${receiver.port}/hooks`;
    const policy = { allowHttp: true, allowPrivate: false };
    // The check at creation saw a public address...
    const publicAnswer = (async () => [{ address: '93.184.216.34', family: 4 }]) as unknown as typeof dns.promises.lookup;
    expect(await destinationProblem(url, policy, publicAnswer)).toBeNull();
    const ep = await endpointAt(url);
    // ...the connection sees loopback, or a mix of both: refused.
    for (const answer of [['127.0.0.1'], ['93.184.216.34', '127.0.0.1'], ['::ffff:7f00:1']]) {
      const r = await service({ allowPrivate: false, resolve: resolverOf(answer).fn }).test(systemContext(), ep.id);
      expect(r.attempt.error).toMatch(/^destination refused: refused to connect to rebind\.example: .* (loopback|not a public)/);
    }
    expect(receiver.received).toHaveLength(0);
  });

  test('when the worker delivers to such a name, then every attempt is refused and recorded, the receiver gets nothing', async () => {
    await disableOtherEndpoints(t);
    const ep = await endpointAt(`http://worker-rebind.example:${receiver.port}/hooks`);
    const svc = service({ allowPrivate: false, resolve: resolverOf(['127.0.0.1']).fn });
    const [id] = await t.db.transaction((trx) => t.c.events.emit(trx, { type: 'customer.updated', data: {} }));
    const claimed = await svc.claim({ limit: 10, perEndpoint: 10, busy: new Map(), leaseSeconds: 5, by: 'forgery-test' });
    const mine = claimed.filter((d) => d.endpointId === ep.id);
    expect(mine.map((d) => d.eventId)).toEqual([id]);
    const result = await svc.attempt(mine[0]!);
    await svc.record([svc.outcomeOf(mine[0]!, result)], 'forgery-test');
    expect(result.error).toMatch(/^destination refused: refused to connect to worker-rebind\.example/);
    expect(await t.db('webhook_deliveries').where({ endpoint_id: ep.id }).first()).toMatchObject({ state: 'pending', attempts: 1 });
    expect(receiver.received).toHaveLength(0);
  });
});

describe('redirects', () => {
  test('when the receiver answers a redirect, then it is not followed: a failure, and the redirect target gets nothing', async () => {
    const target = await startReceiver();
    try {
      const ep = await endpointAt(receiver.url);
      receiver.behave(() => ({ status: 302, headers: { location: target.url } }));
      const r = await service({ allowPrivate: true }).test(systemContext(), ep.id);
      expect(r.attempt).toMatchObject({ outcome: 'failed', status: 302, error: `redirect (302 to ${target.url}) not followed` });
      expect(r.delivery.state).toBe('pending');
      expect(receiver.received).toHaveLength(1);
      expect(target.received).toHaveLength(0);
    } finally {
      receiver.behave(() => ({ status: 200 }));
      await target.close();
    }
  });
});
