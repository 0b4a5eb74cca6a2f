import { VerificationCache } from '../../src/modules/api-keys/verification-cache';

const verdict = (customerId: string, keyId: string) => ({ ok: true, customerId, keyId, keyExpiresAt: null });

describe('VerificationCache', () => {
  test('when an entry is stored, then it is due for a re-check once the TTL has passed', () => {
    let now = 0;
    const cache = new VerificationCache(1000, 10, () => now);
    cache.set('a', verdict('c1', 'k1'));
    now = 5000;
    expect(cache.get('a')).toMatchObject({ ok: true, keyId: 'k1', checkAfter: 1000 });
  });

  test('when full, then the oldest entry goes first', () => {
    const cache = new VerificationCache(60_000, 2);
    cache.set('a', verdict('c1', 'k1'));
    cache.set('b', verdict('c1', 'k2'));
    cache.set('c', verdict('c2', 'k3'));
    expect([cache.get('a'), !!cache.get('b'), !!cache.get('c')]).toEqual([undefined, true, true]);
  });

  test('when keys or a customer are evicted, then only their entries go', () => {
    const cache = new VerificationCache(60_000, 10);
    cache.set('a', verdict('c1', 'k1'));
    cache.set('b', verdict('c1', 'k2'));
    cache.set('c', verdict('c2', 'k3'));
    cache.evictKeys(['k1']);
    expect([!!cache.get('a'), !!cache.get('b'), !!cache.get('c')]).toEqual([false, true, true]);
    cache.evictCustomer('c1');
    expect([!!cache.get('b'), !!cache.get('c')]).toEqual([false, true]);
  });

  test('when an eviction happened while a verification ran, then its verdict is not cached', () => {
    const cache = new VerificationCache(60_000, 10);
    const seen = cache.generation;
    cache.evictKeys(['k1']);
    cache.set('a', verdict('c1', 'k1'), seen);
    expect(cache.get('a')).toBeUndefined();
  });

  test('when the TTL is zero, then nothing is cached', () => {
    const cache = new VerificationCache(0, 10);
    cache.set('a', verdict('c1', 'k1'));
    expect(cache.get('a')).toBeUndefined();
  });
});
