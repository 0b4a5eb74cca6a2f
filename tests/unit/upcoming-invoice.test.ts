import { estimateMetrics, lineAmount } from '../../src/modules/invoices/local-estimate';
import { UpcomingCache } from '../../src/modules/invoices/upcoming-cache';

describe('lineAmount: quantity × unit price in whole minor units, exactly', () => {
  test.each([
    ['1234.5', '0.05', 62], // 61.725
    ['1.005', '100', 101], // 100.5 exactly; 100.49999999999999 in floating point
    ['0.5', '1', 1], // half rounds up
    ['0.499999', '1', 0],
    ['3', '0.1', 0], // 0.3
    ['10', '0.15', 2], // 1.5
    ['999999999.999999', '0.000000000001', 0],
    ['100000000', '4900.123456789012', 490012345679], // 490012345678.9012
    ['0', '123', 0],
  ])('when %s units at %s, then %i', (q, unit, want) => {
    expect(lineAmount(q, unit)).toBe(want);
  });

  test('when the amount would pass what a JSON number carries exactly, then it throws rather than answer a wrong figure', () => {
    expect(() => lineAmount('99999999999999', '999999999999')).toThrow(RangeError);
    expect(lineAmount('1000', '1000')).toBe(1_000_000);
  });
});

describe('estimateMetrics', () => {
  const plan = {
    localPricing: null,
    meteredPrices: { storage_gb: 'price_s' },
    entitlements: { features: [], limits: { api_calls: 1000, projects: 10, seats_x: null } },
  };
  test('when the plan has local pricing, then its metered metrics; without, those billed or limited that are usage metrics', () => {
    expect(estimateMetrics(plan, ['api_calls', 'storage_gb'])).toEqual(['api_calls', 'storage_gb']);
    expect(estimateMetrics({ ...plan, localPricing: { currency: 'usd', unit_amount: 1, metered: { storage_gb: '1' } } }, ['api_calls', 'storage_gb'])).toEqual([
      'storage_gb',
    ]);
  });
});

describe('UpcomingCache', () => {
  let clock = 0;
  const now = () => clock;
  const deferred = <T>() => {
    let resolve!: (v: T) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
    return { promise, resolve, reject };
  };

  test('when callers ask while a load is in flight, then they share it; a settled answer is kept for the TTL, then loaded again', async () => {
    const cache = new UpcomingCache<number>(1000, 10, now);
    const d = deferred<number>();
    let loads = 0;
    const load = () => (loads++, d.promise);
    const [a, b] = [cache.get('c1', 'k', load), cache.get('c1', 'k', load)];
    d.resolve(7);
    expect(await Promise.all([a, b])).toEqual([7, 7]);
    expect(loads).toBe(1);
    clock += 999;
    expect(await cache.get('c1', 'k', () => Promise.resolve(8))).toBe(7);
    clock += 2;
    expect(await cache.get('c1', 'k', () => Promise.resolve(8))).toBe(8);
  });

  test('when the key changes, then the answer is loaded again at once', async () => {
    const cache = new UpcomingCache<number>(1000, 10, now);
    expect(await cache.get('c1', 'plan-a', () => Promise.resolve(1))).toBe(1);
    expect(await cache.get('c1', 'plan-b', () => Promise.resolve(2))).toBe(2);
  });

  test('when a load fails, then it is not kept: the next caller loads again', async () => {
    const cache = new UpcomingCache<number>(1000, 10, now);
    await expect(cache.get('c1', 'k', () => Promise.reject(new Error('down')))).rejects.toThrow('down');
    expect(cache.size).toBe(0);
    expect(await cache.get('c1', 'k', () => Promise.resolve(3))).toBe(3);
  });

  test('when more customers than the bound ask, then the least recently used go first', async () => {
    const cache = new UpcomingCache<number>(60_000, 3, now);
    for (const c of ['a', 'b', 'c']) await cache.get(c, 'k', () => Promise.resolve(1));
    await cache.get('a', 'k', () => Promise.resolve(99)); // a hit: a is now the most recent
    await cache.get('d', 'k', () => Promise.resolve(1));
    expect(cache.size).toBe(3);
    expect(await cache.get('a', 'k', () => Promise.resolve(2))).toBe(1);
    expect(await cache.get('b', 'k', () => Promise.resolve(2))).toBe(2);
  });
});
