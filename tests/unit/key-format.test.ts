import { generateKey, keyFingerprint, parseKey, START_LENGTH } from '../../src/modules/api-keys/key-format';
import { uuidv7 } from '../../src/lib/ids';

describe('key format', () => {
  test('when a key is generated, then it is cust_<id>_<43 base64url chars> and parses back', () => {
    const id = uuidv7();
    const { key, secret, start } = generateKey(id);
    expect(key).toBe(`cust_${id}_${secret}`);
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(secret, 'base64url')).toHaveLength(32);
    expect(start).toBe(secret.slice(0, START_LENGTH));
    expect(parseKey(key)).toEqual({ customerId: id, secret, start });
  });

  test('when two keys are generated, then their secrets differ', () => {
    const id = uuidv7();
    expect(generateKey(id).secret).not.toBe(generateKey(id).secret);
  });

  test.each([
    [''],
    ['cust_'],
    [`cust_${uuidv7()}_short`],
    [`cust_${uuidv7()}_${'A'.repeat(44)}`],
    [`key_${uuidv7()}_${'A'.repeat(43)}`.padEnd(85, 'A')],
    [`cust_${uuidv7().toUpperCase()}_${'A'.repeat(43)}`],
    [`cust_${'-'.repeat(36)}_${'A'.repeat(43)}`],
    [`cust_${uuidv7()}_${'A'.repeat(42)}=`],
    [`cust_${uuidv7()}_${'A'.repeat(42)}\n`],
  ])('when the key is %j, then it is malformed', (k) => {
    expect(parseKey(k)).toBeNull();
  });

  test('when fingerprinting, then it is a SHA-256 that does not contain the key', () => {
    const { key, secret } = generateKey(uuidv7());
    const fp = keyFingerprint(key);
    expect(fp).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(fp).not.toContain(secret.slice(0, 10));
  });
});

describe('uuidv7', () => {
  test('when ids are made over time, then they sort by creation and carry version 7', () => {
    const a = uuidv7(1_700_000_000_000);
    const b = uuidv7(1_700_000_000_001);
    expect(a < b).toBe(true);
    expect(a[14]).toBe('7');
    expect(['8', '9', 'a', 'b']).toContain(a[19]);
  });
});
