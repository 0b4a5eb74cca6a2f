import { effectiveEntitlements, meteredStatus, periodDays, micros, fromMicros } from '../../src/modules/entitlements/entitlement-rules';

const metrics = ['api_calls', 'storage_gb'];
const plan = { features: ['sso', 'audit'], limits: { instances: 10, api_calls: 1000, storage_gb: null, projects: 5 }, overage: { api_calls: 1.25 as const } };
const NOW = Date.parse('2026-12-07T00:00:00Z');

describe('effective entitlements', () => {
  it('is the plan when there are no overrides, with block the policy of an allowance the plan names none for', () => {
    const e = effectiveEntitlements({ features: ['a'], limits: { api_calls: 5 } }, null, metrics, NOW);
    expect(e).toEqual({ features: ['a'], limits: { api_calls: 5 }, overage: { api_calls: 'block' }, thresholds: [80, 100] });
  });

  it('adds and removes features, raises, lowers and unlimits limits, replaces instances, policies and thresholds', () => {
    const terms = {
      features: { add: ['beta'], remove: ['audit'] },
      limits: { api_calls: 2000, projects: null },
      instances: 40,
      overage: { api_calls: 'allow' as const },
      thresholds: [100, 50],
    };
    const e = effectiveEntitlements(plan, { terms, expiresAt: null }, metrics, NOW);
    expect(e.features).toEqual(['beta', 'sso']);
    expect(e.limits).toEqual({ instances: 40, api_calls: 2000, storage_gb: null, projects: null });
    expect(e.overage).toEqual({ api_calls: 'allow' });
    expect(e.thresholds).toEqual([50, 100]);
  });

  it('stops applying overrides at their expires_at, by the clock alone', () => {
    const terms = { features: { add: ['beta'], remove: [] }, limits: {}, instances: null, overage: {} };
    const o = { terms, expiresAt: new Date(NOW + 1000) };
    expect(effectiveEntitlements(plan, o, metrics, NOW).limits.instances).toBeNull();
    expect(effectiveEntitlements(plan, o, metrics, NOW + 1000).limits.instances).toBe(10);
    expect(effectiveEntitlements(plan, o, metrics, NOW + 1000).features).toEqual(['audit', 'sso']);
  });
});

describe('metered status', () => {
  it('tells ok, warn, over_tolerated and blocked by the policy', () => {
    expect(meteredStatus(1000, '799.999999', 'block', [80, 100]).state).toBe('ok');
    expect(meteredStatus(1000, '800', 'block', [80, 100])).toMatchObject({ state: 'warn', thresholds_crossed: [80], percent: 80 });
    expect(meteredStatus(1000, '1000', 'block', [80, 100])).toMatchObject({ state: 'blocked', blocks_at: '1000' });
    expect(meteredStatus(1000, '1000', 'allow', [80, 100]).state).toBe('warn');
    expect(meteredStatus(1000, '5000', 'allow', [80, 100])).toMatchObject({ state: 'over_tolerated', blocks_at: null, percent: 500 });
    expect(meteredStatus(1000, '1249.5', 1.25, [80, 100])).toMatchObject({ state: 'over_tolerated', blocks_at: '1250' });
    expect(meteredStatus(1000, '1250', 1.25, [80, 100]).state).toBe('blocked');
    expect(meteredStatus(0, '0', 'block', [80]).state).toBe('blocked');
    expect(meteredStatus(0, '0', 'allow', [80])).toMatchObject({ state: 'ok', percent: null, thresholds_crossed: [] });
  });

  it('compares decimals exactly', () => {
    expect(micros('0.000001')).toBe(1n);
    expect(fromMicros(micros('12.500000'))).toBe('12.5');
    expect(meteredStatus(3, '2.400000', 'block', [80]).thresholds_crossed).toEqual([80]);
    expect(meteredStatus(3, '2.399999', 'block', [80]).thresholds_crossed).toEqual([]);
  });
});

describe('period days', () => {
  it('counts the day a period starts, not the day it ends: consecutive periods share no day', () => {
    const a = periodDays({ start: new Date('2026-11-07T10:00:00Z'), end: new Date('2026-12-07T10:00:00Z') });
    const b = periodDays({ start: new Date('2026-12-07T10:00:00Z'), end: new Date('2027-01-07T10:00:00Z') });
    expect(a).toEqual({ fromDay: '2026-11-07', toDay: '2026-12-07' });
    expect(b.fromDay).toBe(a.toDay);
    expect(periodDays({ start: new Date('2026-12-07T10:00:00Z'), end: new Date('2026-12-07T11:00:00Z') })).toEqual({
      fromDay: '2026-12-07',
      toDay: '2026-12-08',
    });
  });
});
