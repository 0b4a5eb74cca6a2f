/**
 * The offline helper's arithmetic, beside the service's: the same state for every allowance, usage and
 * policy (the client re-implements the rule, it cannot import it), exact decimals, the edges of
 * allows(), where local reports start counting, and the ledger read back in any order.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { allowsMore, localSince, meteredUsage } from '../../packages/client';
import { fromMicros, meteredState, toMicros } from '../../packages/client/metered-usage';
import { LEDGER_FILE, UsageLedger } from '../../packages/client/usage-ledger';
import { meteredStatus } from '../../src/modules/entitlements/entitlement-rules';

const claimsWith = (overage: 'block' | 'allow' | number, used: string, periodEnd = 2_000_000_000) => ({
  iat: 1_800_000_000,
  usage: { period_start: 1_700_000_000, period_end: periodEnd, quantities: { api_calls: used } },
  metered: {
    api_calls: { allowance: 100, used, percent: null, thresholds: [80, 100], thresholds_crossed: [], overage, blocks_at: null, state: 'ok' as const },
  },
});

describe('the state, as the service computes it', () => {
  const policies = ['block', 'allow', 1.1, 1.25, 3] as const;
  const useds = ['0', '0.000001', '79.999999', '80', '99.999999', '100', '100.000001', '109.99', '110', '124.999999', '125', '299.99', '300', '1000'];
  const cases = [0, 1, 100].flatMap((allowance) => policies.flatMap((p) => useds.map((u) => [allowance, u, p] as const)));

  test.each(cases)('when the allowance is %s and %s is used under %s, then the client says what the service says', (allowance, used, policy) => {
    const server = meteredStatus(allowance, used, policy, [50, 80, 100]);
    expect(meteredState(allowance, toMicros(used)!, policy, [50, 80, 100])).toBe(server.state);
    const u = meteredUsage({ ...claimsWith(policy, used), metered: { api_calls: { ...server } } }, 'api_calls', 0n, 0)!;
    expect([u.state, u.blocks_at, u.used]).toEqual([server.state, server.blocks_at, server.used]);
  });
});

describe('quantities and allows()', () => {
  test('when decimals are summed, then exactly (millionths), numbers and strings alike; what is not a quantity is null', () => {
    expect(fromMicros(toMicros('0.1')! + toMicros(0.2)!)).toBe('0.3');
    expect(fromMicros(toMicros('12345678901234.123456')! + 1n)).toBe('12345678901234.123457');
    expect([toMicros(-1), toMicros('1e3'), toMicros('1.0000001'), toMicros(Number.NaN), toMicros(' 7 ')]).toEqual([null, null, null, null, 7_000_000n]);
  });

  test.each([
    ['block', '99', '1', true],
    ['block', '99', '1.000001', false],
    ['block', '100', '0', true],
    [1.25, '120', '5', true],
    [1.25, '120', '5.5', false],
    ['allow', '1000000', '1000000', true],
  ] as const)('when the policy is %s, %s is used and %s more is asked, then %s', (policy, used, n, allowed) => {
    expect(allowsMore(meteredUsage(claimsWith(policy, used), 'api_calls', 0n, 0), n)).toBe(allowed);
  });

  test('when local reports are added, then they count; a metric not metered is allowed; a bad n is a TypeError', () => {
    const u = meteredUsage(claimsWith('block', '90'), 'api_calls', 9_500_000n, 0)!;
    expect(u).toMatchObject({ used_signed: '90', used_local: '9.5', used: '99.5', state: 'warn' });
    expect([allowsMore(u, '0.5'), allowsMore(u, 0.6)]).toEqual([true, false]);
    expect(meteredUsage(claimsWith('block', '90'), 'storage_gb', 5n, 0)).toBeNull();
    expect(meteredUsage(claimsWith('block', '90'), 'toString', 5n, 0)).toBeNull();
    expect(allowsMore(null, 5)).toBe(true);
    expect(() => allowsMore(u, -1)).toThrow(TypeError);
  });

  test('when local reports start counting: after the request, else from iat; from period_end once it has passed', () => {
    const c = claimsWith('block', '90', 1_900_000_000);
    expect(localSince(c, 1_850_000_000_000)).toBe(1_800_000_000_000);
    expect(localSince(c, 1_850_000_000_000, 1_800_000_000_500)).toBe(1_800_000_000_501);
    // A requestedAt far past iat (edited in the kept file) is not believed beyond a minute.
    expect(localSince(c, 1_850_000_000_000, 1_800_100_000_000)).toBe(1_800_000_060_000);
    expect(localSince(c, 1_900_000_000_000, 1_800_000_000_500)).toBe(1_900_000_000_000);
    expect(meteredUsage(c, 'api_calls', 4_000_000n, 1_900_000_000_000)).toMatchObject({ used_signed: '0', used_local: '4', used: '4', state: 'ok' });
  });
});

describe('the ledger', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-ledger-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const ev = (key: string, quantity: number | string, metric = 'api_calls') => ({ metric, quantity, idempotency_key: key });
  const ok = (key: string) => ({ id: key, idempotencyKey: key, replayed: false, queued: false as const });

  test('when events are recorded, then only the acknowledged count, each key once; lines read back after a reopen, in any order of time', async () => {
    const now = Date.now();
    let l = await UsageLedger.open(dir, { now });
    await l.record(now - 1000, [ev('a', 2), ev('b', '0.5'), ev('refused', 100)], [ok('a'), ok('b')]);
    await l.record(now - 5000, [ev('c', 3), ev('d', 1, 'storage_gb')], [ok('c'), ok('d')]); // this clock went back
    await l.record(now, [ev('a', 2)], [{ ...ok('a'), replayed: true }]); // counted already
    expect([l.since('api_calls', 0), l.since('api_calls', now - 2000), l.since('storage_gb', 0)]).toEqual([5_500_000n, 2_500_000n, 1_000_000n]);
    await l.close();
    expect(fs.readFileSync(path.join(dir, LEDGER_FILE), 'utf8').trimEnd().split('\n')).toHaveLength(2);
    l = await UsageLedger.open(dir, { now });
    expect([l.since('api_calls', 0), l.since('api_calls', now - 2000)]).toEqual([5_500_000n, 2_500_000n]);
    await l.close();
  });
});
