/**
 * The offline helper (license.allows(), license.usage()) against the real service served over HTTP:
 * the signed `metered` figures plus what the instance reported since the license was issued (the
 * usage ledger of acknowledged reports, and the queue), with each policy (block at 100%, a tolerance
 * of 1.25, allow), across a restart of the instance (a new client on the same folders), with the
 * service out of reach (a client pointed at a closed port), and once the license's period has ended.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { BillingClient, UnsafePathError, type BillingClientOptions, type ClientLicense, type Jwks, type UsageReceipt } from '../../packages/client';
import { LEDGER_FILE } from '../../packages/client/usage-ledger';
import { createPlan, subscribe, type CreatedCustomer } from '../helpers/factories';
import { serve, stop, type Served } from '../helpers/served-app';
import { claims, jwksOf, makeKey, sign } from './license-fixtures';

/** Nothing listens there: the service out of reach. */
const UNREACHABLE = 'http://127.0.0.1:9';
const DAY_MS = 86_400_000;

let s: Served;
let jwks: Jwks;
let work: string;
const open: BillingClient[] = [];

beforeAll(async () => {
  s = await serve({});
  // The license public keys, as the vendor builds them into its software.
  jwks = (await request(s.t.app).get('/.well-known/jwks.json').expect(200)).body;
});
afterAll(() => stop(s));
beforeEach(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-metering-'));
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
  fs.rmSync(work, { recursive: true, force: true });
});

/** A customer whose plan allows 100 api_calls a period with this overage policy. */
async function customerWith(overage: 'block' | 'allow' | number): Promise<CreatedCustomer> {
  const plan = await createPlan(s.t, { entitlements: { features: [], limits: { api_calls: 100 }, overage: { api_calls: overage } } });
  return (await subscribe(s.t, { plan })).customer;
}

const dir = (name: string) => path.join(work, name);
function client(c: CreatedCustomer, o: Partial<BillingClientOptions> & { licenseDir?: string | null } = {}): BillingClient {
  const { licenseDir, ...rest } = o;
  const made = new BillingClient({
    baseUrl: s.url,
    apiKey: c.apiKey,
    maxRetries: 0,
    backoffBaseMs: 5,
    backoffMaxMs: 20,
    flushIntervalMs: 600_000,
    ...rest,
    license: { trustedKeys: jwks, ...(licenseDir === null ? {} : { dir: licenseDir ?? dir('license') }) },
  });
  open.push(made);
  return made;
}

async function closeAll(): Promise<void> {
  await Promise.all(open.splice(0).map((c) => c.close()));
}

const calls = (quantity: number | string, n = 1) => Array.from({ length: n }, () => ({ metric: 'api_calls', quantity }));

/** usage('api_calls') in short: [used_signed, used_local, used, state]. */
async function figures(l: ClientLicense | Awaited<ReturnType<BillingClient['verifyLicense']>>) {
  const u = await l.usage('api_calls');
  return u && [u.used_signed, u.used_local, u.used, u.state];
}

describe('block at 100%: the signed figures plus the ledger (no queue)', () => {
  test('when the instance reports after its license was issued, then allows() stops at the allowance; after a restart offline the same; the service agrees', async () => {
    const c = await customerWith('block');
    const first = client(c);
    await first.reportUsage(calls(60));
    const l = await first.getLicense();
    expect(l.metered.api_calls).toMatchObject({ allowance: 100, used: '60', state: 'ok', overage: 'block', blocks_at: '100' });
    // Reported before the license was asked for: in the signed figure, not counted again.
    expect(await figures(l)).toEqual(['60', '0', '60', 'ok']);

    const receipts = (await first.reportUsage(calls(10, 3))) as UsageReceipt[];
    expect(await figures(l)).toEqual(['60', '30', '90', 'warn']);
    expect([await l.allows('api_calls', 10), await l.allows('api_calls', 10.5), await l.allows('api_calls', '10.000001')]).toEqual([true, false, false]);

    // The same event sent again is a replay: the service has it once, it counts once.
    const again = (await first.reportUsage({ metric: 'api_calls', quantity: 10, idempotency_key: receipts[0]!.idempotencyKey })) as UsageReceipt;
    expect(again.replayed).toBe(true);
    expect(await figures(l)).toEqual(['60', '30', '90', 'warn']);

    await first.reportUsage(calls(10));
    expect(await figures(l)).toEqual(['60', '40', '100', 'blocked']);
    expect(await l.allows('api_calls')).toBe(false);
    expect(await l.usage('api_calls')).toEqual({
      allowance: 100,
      used_signed: '60',
      used_local: '40',
      used: '100',
      state: 'blocked',
      blocks_at: '100',
      overage: 'block',
    });

    // A restart, the service out of reach: the kept license and the ledger are read back, same answers.
    await closeAll();
    const restarted = client(c, { baseUrl: UNREACHABLE });
    const kept = await restarted.getLicense();
    expect([kept.offline, kept.claims.jti]).toEqual([true, l.claims.jti]);
    expect(await figures(kept)).toEqual(['60', '40', '100', 'blocked']);
    expect(await kept.allows('api_calls')).toBe(false);

    // The service counted the same: a new license signs 100, and nothing local is added to it.
    await closeAll();
    const fresh = await client(c).getLicense();
    expect([fresh.offline, fresh.metered.api_calls!.used, fresh.metered.api_calls!.state]).toEqual([false, '100', 'blocked']);
    expect(await figures(fresh)).toEqual(['100', '0', '100', 'blocked']);

    // The ledger: one line per acknowledgement, 0600.
    const file = path.join(dir('license'), LEDGER_FILE);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const lines = fs
      .readFileSync(file, 'utf8')
      .trimEnd()
      .split('\n')
      .map((x) => JSON.parse(x));
    expect(lines.map((x) => x.m)).toEqual([{ api_calls: '60' }, { api_calls: '30' }, { api_calls: '10' }]);
    expect(lines.every((x) => Number.isSafeInteger(x.at))).toBe(true);
  });
});

describe('a tolerance of 1.25: queued reports count while the service is out of reach', () => {
  test('when events wait in the queue, then they count; across a restart the same; once sent they count once; the new license agrees', async () => {
    const c = await customerWith(1.25);
    const queueDir = dir('queue');
    const first = client(c, { queueDir });
    await first.reportUsage(calls(50));
    await first.flush();
    expect(await first.queued()).toMatchObject({ events: 0 });
    expect(await figures(await first.getLicense())).toEqual(['50', '0', '50', 'ok']);

    // The service out of reach: events wait in the queue, and count.
    await closeAll();
    const offline = client(c, { queueDir, baseUrl: UNREACHABLE });
    const l = await offline.getLicense();
    expect(l.offline).toBe(true);
    await offline.reportUsage(calls(20, 3));
    await expect(offline.flush()).rejects.toThrow();
    expect(await offline.queued()).toMatchObject({ events: 3 });
    expect(await figures(l)).toEqual(['50', '60', '110', 'over_tolerated']);
    expect(await l.usage('api_calls')).toMatchObject({ blocks_at: '125', overage: 1.25 });
    expect([await l.allows('api_calls', 15), await l.allows('api_calls', 16)]).toEqual([true, false]);

    // A restart, still out of reach: the queue and the ledger are read back.
    await closeAll();
    const restarted = client(c, { queueDir, baseUrl: UNREACHABLE });
    const kept = await restarted.getLicense();
    expect(await restarted.queued()).toMatchObject({ events: 3 });
    expect(await figures(kept)).toEqual(['50', '60', '110', 'over_tolerated']);
    expect([await kept.allows('api_calls', 15), await kept.allows('api_calls', 16)]).toEqual([true, false]);

    // The service is back, and the queue is sent (by the background flusher or flush(), whichever comes
    // first): a license fetched meanwhile counts each event once, in its figures or added to them.
    await closeAll();
    const back = client(c, { queueDir });
    const before = await back.getLicense();
    expect(await before.usage('api_calls')).toMatchObject({ used: '110', state: 'over_tolerated' });
    await back.flush();
    expect(await back.queued()).toMatchObject({ events: 0 });
    expect(await before.usage('api_calls')).toMatchObject({ used: '110', state: 'over_tolerated' });
    const after = await back.getLicense();
    expect(after.metered.api_calls).toMatchObject({ used: '110', state: 'over_tolerated' });
    expect(await figures(after)).toEqual(['110', '0', '110', 'over_tolerated']);

    await back.reportUsage(calls(15));
    expect(await figures(after)).toEqual(['110', '15', '125', 'blocked']);
    expect(await after.allows('api_calls')).toBe(false);
  });
});

describe('allow: never stops', () => {
  test('when usage passes the allowance, then allows() stays true and the state says over_tolerated; a metric the license does not meter is allowed (memory only)', async () => {
    const c = await customerWith('allow');
    const cl = client(c, { licenseDir: null });
    await cl.reportUsage(calls(150));
    const l = await cl.getLicense();
    expect(l.metered.api_calls).toMatchObject({ used: '150', state: 'over_tolerated', blocks_at: null, overage: 'allow' });
    await cl.reportUsage(calls('1000.25'));
    expect(await figures(l)).toEqual(['150', '1000.25', '1150.25', 'over_tolerated']);
    expect(await l.allows('api_calls', 1_000_000)).toBe(true);
    expect(await l.usage('api_calls')).toMatchObject({ blocks_at: null, overage: 'allow' });
    // Not metered: no allowance in the license.
    expect([await l.allows('storage_gb', 5), await l.usage('storage_gb')]).toEqual([true, null]);
    await expect(l.allows('api_calls', -1)).rejects.toThrow(TypeError);
    await expect(l.allows('storage_gb', Number.NaN)).rejects.toThrow(TypeError);
  });
});

describe('a license whose usage period has ended, through verifyLicense', () => {
  test('when now is past period_end, then the signed figures are not counted, only reports acknowledged since; before it they are (control)', async () => {
    const c = await customerWith('block');
    const key = await makeKey('metering-k1');
    const now = Date.now();
    const sec = (ms: number) => Math.floor(ms / 1000);
    const iat = sec(now - 2 * 3_600_000);
    const metered = (used: string, state: 'ok' | 'blocked') => ({
      api_calls: {
        allowance: 100,
        used,
        percent: Number(used),
        thresholds: [80, 100],
        thresholds_crossed: [],
        overage: 'block' as const,
        blocks_at: '100',
        state,
      },
    });
    const token = (periodEnd: number, used: string, state: 'ok' | 'blocked') =>
      sign(
        key,
        claims({
          sub: c.id,
          iat,
          exp: sec(now + 5 * DAY_MS),
          entitlements: { features: [], limits: { api_calls: 100 } },
          usage: { period_start: sec(now - 31 * DAY_MS), period_end: periodEnd, quantities: { api_calls: used } },
          metered: metered(used, state),
        }),
      );
    // Kept from before: a line past the ledger's 40 days, one acknowledged before the period ended, and a torn last line.
    const licenseDir = dir('license');
    fs.mkdirSync(licenseDir, { mode: 0o700 });
    const file = path.join(licenseDir, LEDGER_FILE);
    fs.writeFileSync(
      file,
      [JSON.stringify({ at: now - 50 * DAY_MS, m: { api_calls: '500' } }), JSON.stringify({ at: now - 90 * 60_000, m: { api_calls: '7' } }), '{"at": 17'].join(
        '\n',
      ),
      { mode: 0o600 },
    );
    const cl = new BillingClient({ baseUrl: s.url, apiKey: c.apiKey, maxRetries: 0, license: { trustedKeys: jwksOf(key), dir: licenseDir } });
    open.push(cl);
    await cl.reportUsage(calls(3));
    // Compacted as it was opened: the old line and the torn one gone.
    expect(
      fs
        .readFileSync(file, 'utf8')
        .trimEnd()
        .split('\n')
        .map((x) => JSON.parse(x).m),
    ).toEqual([{ api_calls: '7' }, { api_calls: '3' }]);

    const ended = await cl.verifyLicense(await token(sec(now - 3_600_000), '95', 'ok'));
    expect(ended.metered.api_calls).toMatchObject({ used: '95' });
    expect(await figures(ended)).toEqual(['0', '3', '3', 'ok']);
    expect([await ended.allows('api_calls', 97), await ended.allows('api_calls', 98)]).toEqual([true, false]);

    // Control: the same license with its period still running counts the signed 95 and every line since iat.
    const running = await cl.verifyLicense(await token(sec(now + 10 * DAY_MS), '95', 'ok'));
    expect(await figures(running)).toEqual(['95', '10', '105', 'blocked']);
    expect(await running.allows('api_calls')).toBe(false);
  });
});

describe('the ledger file is private', () => {
  test('when a symbolic link is planted at the ledger’s name, then it is refused and left alone, reports still succeed (the failure is told); without it, it works (control)', async () => {
    const c = await customerWith('block');
    const licenseDir = dir('license');
    fs.mkdirSync(licenseDir, { mode: 0o700 });
    const target = path.join(work, 'target.txt');
    fs.writeFileSync(target, 'not a ledger');
    fs.symlinkSync(target, path.join(licenseDir, LEDGER_FILE));
    const told: unknown[] = [];
    const cl = client(c, { onFlushError: (err) => told.push(err) });
    const l = await cl.getLicense();
    expect(await cl.reportUsage(calls(5))).toHaveLength(1);
    expect(told.some((e) => e instanceof UnsafePathError)).toBe(true);
    await expect(l.usage('api_calls')).rejects.toBeInstanceOf(UnsafePathError);
    expect(fs.readFileSync(target, 'utf8')).toBe('not a ledger');

    fs.rmSync(path.join(licenseDir, LEDGER_FILE));
    await cl.reportUsage(calls(4));
    expect(await figures(l)).toEqual(['0', '4', '4', 'ok']);
  });
});
