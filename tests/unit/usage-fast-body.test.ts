/**
 * POST /api/usage checks the common body by hand before its schema (usage-schemas.ts, fastBody).
 * On every body generated here, the hand-written check either gives exactly what the schema gives,
 * or steps aside (undefined); it never accepts what the schema refuses.
 */
import fc from 'fast-check';
import { usageSchemas } from '../../src/modules/usage/usage-schemas';

const NOW = Date.UTC(2026, 10, 28, 12, 0, 0);
const s = usageSchemas(['api_calls', 'storage_gb'], 5, () => NOW);

const iso = (ms: number, offset = 'Z') => new Date(ms).toISOString().replace('Z', offset);
const anyValue = fc.oneof(
  fc.string(),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.integer(), { maxLength: 2 }),
  fc.object({ maxDepth: 1 }),
);
const metric = fc.oneof(
  { arbitrary: fc.constant('api_calls'), weight: 6 },
  fc.constantFrom('api_calls', 'storage_gb', 'API_CALLS', 'other', '', ' api_calls'),
  anyValue,
);
const quantity = fc.oneof(
  { arbitrary: fc.constantFrom(1, 2, '3', '0.25'), weight: 6 },
  fc.constantFrom(0, 1, 0.5, -1, 1e21, 1.1234567, 123456789012345, 0.1 + 0.2, Number.MAX_SAFE_INTEGER),
  fc.constantFrom('1', ' 2.5 ', '0.000001', '0.0000001', '-1', '1e3', '99999999999999.999999', '999999999999999', 'abc', ''),
  fc.double(),
  anyValue,
);
const occurredAt = fc.oneof(
  { arbitrary: fc.integer({ min: -30 * 1440, max: 4 }).map((m) => iso(NOW + m * 60_000)), weight: 4 },
  fc.integer({ min: -40, max: 40 }).map((d) => iso(NOW + d * 86_400_000)),
  fc.integer({ min: -10, max: 10 }).map((m) => iso(NOW + m * 60_000)),
  fc.constantFrom(
    iso(NOW, '+02:00'),
    iso(NOW, '-05:30'),
    '2026-11-28T12:00:00',
    '2026-11-28',
    '2026-02-29T00:00:00Z',
    '2026-11-28T24:00:00Z',
    '2026-11-28T12:00:00.123456789Z',
    'yesterday',
  ),
  anyValue,
);
const key = fc.oneof(
  { arbitrary: fc.stringMatching(/^[a-z0-9-]{1,12}$/), weight: 6 },
  fc.string({ minLength: 0, maxLength: 8 }),
  fc.string({ minLength: 250, maxLength: 260 }),
  fc.constantFrom('k-1', 'é', 'tab\there', '"q"\\'),
  anyValue,
);

/** An event: each field present or not, plus sometimes a field that does not belong. */
const event = fc
  .record(
    {
      metric,
      quantity,
      occurred_at: occurredAt,
      idempotency_key: key,
      extra: fc.oneof({ arbitrary: fc.constant(undefined), weight: 8 }, fc.constant('__proto__'), fc.constant('note'), anyValue),
    },
    { requiredKeys: ['metric', 'quantity', 'idempotency_key'] },
  )
  // Now and then a required field goes missing.
  .chain((e) => fc.constantFrom(...Object.keys(e), '', '', '', '', '', '').map((drop) => Object.fromEntries(Object.entries(e).filter(([k]) => k !== drop))))
  .map((e) => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(e)) {
      if (k !== 'extra') out[k] = v;
      else if (typeof v === 'string') out[v] = 1;
    }
    // As it arrives: through JSON (no undefined, no prototypes but Object's).
    return JSON.parse(JSON.stringify(out)) as unknown;
  });
const body = fc.oneof(
  event,
  fc.array(event, { minLength: 0, maxLength: 7 }).map((events) => ({ events })),
  fc.record({ events: fc.array(event, { maxLength: 2 }), metric }),
  anyValue,
);

test('when bodies are generated, then the hand-written check agrees with the schema or steps aside', () => {
  let taken = 0;
  fc.assert(
    fc.property(body, (b) => {
      const fast = s.fastBody(b);
      const slow = s.body.safeParse(b);
      if (fast === undefined) return;
      taken++;
      expect(slow.success).toBe(true);
      expect(fast).toEqual(slow.data);
    }),
    { numRuns: 5000 },
  );
  // The check is not vacuous: plenty of the generated bodies went the fast way.
  expect(taken).toBeGreaterThan(200);
});

test('when the common bodies arrive, then the hand-written check takes them', () => {
  const one = { metric: 'api_calls', quantity: 1, idempotency_key: 'k-1' };
  expect(s.fastBody(one)).toEqual({ metric: 'api_calls', quantity: '1', idempotency_key: 'k-1' });
  expect(s.fastBody({ metric: 'api_calls', quantity: '2.50' })).toEqual({ metric: 'api_calls', quantity: '2.5' });
  const at = iso(NOW - 60_000);
  expect(s.fastBody({ events: [one, { ...one, idempotency_key: 'k-2', occurred_at: at }] })).toEqual({
    events: [
      { metric: 'api_calls', quantity: '1', idempotency_key: 'k-1' },
      { metric: 'api_calls', quantity: '1', idempotency_key: 'k-2', occurred_at: new Date(at) },
    ],
  });
  // A batch event without its key, or a sixth event (the limit here is 5): the schema's to answer.
  expect(s.fastBody({ events: [{ metric: 'api_calls', quantity: 1 }] })).toBeUndefined();
  expect(s.fastBody({ events: Array.from({ length: 6 }, (_, i) => ({ ...one, idempotency_key: `k-${i}` })) })).toBeUndefined();
});
