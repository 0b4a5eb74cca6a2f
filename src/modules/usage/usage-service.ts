import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import { AppError, NotFoundError, ValidationError } from '../../errors/app-error';
import { uuidv7 } from '../../lib/ids';
import type { CustomersRepository } from '../customers/customers-repository';
import { createGroupCommit } from './group-commit';
import { IDEMPOTENCY_CONFLICT_SQLSTATE, type BatchOutcome, type ForwardingState, type NewUsageEvent, type StoredEvent, type TotalsQuery, type UsageEvent, type UsageRepository } from './usage-repository';

export interface UsageInput {
  metric: string;
  /** Normalised decimal string. */
  quantity: string;
  occurredAt?: Date;
  idempotencyKey: string;
}

export interface Recorded {
  event: UsageEvent;
  /** false: a replay of an event already stored with the same body. */
  created: boolean;
}

export interface UsageServiceDeps {
  db: Knex;
  repo: UsageRepository;
  customers: CustomersRepository;
  /** Stripe on: new events wait in the outbox (pending); off: they are kept as local. */
  stripeEnabled: boolean;
  now?: () => number;
  maxInFlight?: number;
  maxGroup?: number;
  /** Observes events stored (not replays), for metrics. */
  onAccepted?: (mode: 'single' | 'batch', count: number) => void;
}

/**
 * The fingerprint of a request as given (an absent occurred_at stays absent, so a replay
 * matches): the first 16 bytes of SHA-256 over "metric\nquantity\noccurred_ms", in hex. The
 * database function usage_request_hash() computes the same for batches.
 */
export function requestHash(i: UsageInput): string {
  return createHash('sha256')
    .update(`${i.metric}\n${i.quantity}\n${i.occurredAt ? i.occurredAt.getTime() : ''}`)
    .digest()
    .subarray(0, 16)
    .toString('hex');
}

const keyOf = (customerId: string, idempotencyKey: string) => `${customerId}\u0000${idempotencyKey}`;

const conflict = () =>
  new AppError('IDEMPOTENCY_CONFLICT', 'This idempotency key was already used with a different event');

const DEADLOCK = '40P01';
async function retryDeadlock<T>(work: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (err) {
      if ((err as { code?: string }).code !== DEADLOCK || attempt >= 3) throw err;
    }
  }
}

export function createUsageService(deps: UsageServiceDeps) {
  const { db, repo, customers } = deps;
  const now = deps.now ?? Date.now;
  const state: ForwardingState = deps.stripeEnabled ? 'pending' : 'local';

  const toNew = (customerId: string, i: UsageInput): NewUsageEvent => ({
    id: uuidv7(),
    customerId,
    metric: i.metric,
    quantity: i.quantity,
    occurredAt: i.occurredAt ?? new Date(now()),
    idempotencyKey: i.idempotencyKey,
    requestHash: requestHash(i),
  });

  /**
   * Inserts, then settles every event: inserted (created), or already stored with the same
   * hash (replay), or stored with another hash (conflict). Events sharing a key share one row.
   */
  async function write(events: NewUsageEvent[]): Promise<(Recorded | AppError)[]> {
    const leaders = new Map<string, NewUsageEvent>();
    for (const e of events) if (!leaders.has(keyOf(e.customerId, e.idempotencyKey))) leaders.set(keyOf(e.customerId, e.idempotencyKey), e);
    const inserted = new Map((await repo.insert(db, [...leaders.values()], state)).map((r) => [keyOf(r.customerId, r.idempotencyKey), r]));
    const missing = [...leaders.values()].filter((e) => !inserted.has(keyOf(e.customerId, e.idempotencyKey)));
    const existing = new Map<string, StoredEvent>(
      (await repo.findByKeys(db, missing)).map((r) => [keyOf(r.customerId, r.idempotencyKey), r]),
    );
    const claimed = new Set<string>();
    return events.map((e) => {
      const k = keyOf(e.customerId, e.idempotencyKey);
      const fresh = inserted.get(k);
      if (fresh) {
        const hash = leaders.get(k)!.requestHash;
        if (e.requestHash !== hash) return conflict();
        const created = !claimed.has(k);
        claimed.add(k);
        return { event: fresh, created };
      }
      const old = existing.get(k);
      if (!old) return new AppError('CONFLICT', 'The event could not be stored; retry');
      return old.requestHash === e.requestHash ? { event: old, created: false } : conflict();
    });
  }

  const group = createGroupCommit<NewUsageEvent, Recorded | AppError>({
    maxInFlight: deps.maxInFlight ?? 4,
    maxBatch: deps.maxGroup ?? 1000,
    flush: (events) => retryDeadlock(() => write(events)),
  });

  return {
    /** One event; written together with whatever else arrives at the same moment. */
    async recordOne(customerId: string, input: UsageInput): Promise<Recorded> {
      const outcome = await group.submit(toNew(customerId, input));
      if (outcome instanceof Error) throw outcome;
      if (outcome.created) deps.onAccepted?.('single', 1);
      return outcome;
    },

    /**
     * A batch is all or nothing: one conflict and nothing of it is written. One round trip;
     * the answer names each event by id (the caller has the bodies it sent).
     */
    async recordBatch(customerId: string, inputs: UsageInput[]): Promise<BatchOutcome[]> {
      const seen = new Map<string, { index: number; body: string }>();
      const problems: { path: string; message: string; index: number }[] = [];
      inputs.forEach((i, index) => {
        const body = `${i.metric}\n${i.quantity}\n${i.occurredAt?.getTime() ?? ''}`;
        const prior = seen.get(i.idempotencyKey);
        if (prior && prior.body !== body) {
          problems.push({ index, path: `events.${index}.idempotency_key`, message: `repeats the key of event ${prior.index} with a different body` });
        } else if (!prior) seen.set(i.idempotencyKey, { index, body });
      });
      if (problems.length) throw new ValidationError('Invalid usage events', problems);
      let rows;
      try {
        rows = await retryDeadlock(() => repo.insertBatch(db, customerId, inputs, state));
      } catch (err) {
        if ((err as { code?: string }).code === IDEMPOTENCY_CONFLICT_SQLSTATE) throw conflict();
        throw err;
      }
      deps.onAccepted?.('batch', rows.filter((r) => r.created).length);
      const byKey = new Map(rows.map((r) => [r.idempotencyKey, r]));
      const claimed = new Set<string>();
      return inputs.map((e) => {
        const r = byKey.get(e.idempotencyKey);
        if (!r) throw new AppError('CONFLICT', 'The batch could not be stored; retry');
        const created = r.created && !claimed.has(e.idempotencyKey);
        claimed.add(e.idempotencyKey);
        return { id: r.id, idempotencyKey: r.idempotencyKey, created };
      });
    },

    async totals(q: TotalsQuery) {
      return repo.totals(db, q);
    },

    async totalsForCustomer(customerId: string, q: Omit<TotalsQuery, 'customerId'>) {
      if (!(await customers.findById(db, customerId))) throw new NotFoundError('Customer');
      return repo.totals(db, { ...q, customerId });
    },

    drained: () => group.drained(),
  };
}

export type UsageService = ReturnType<typeof createUsageService>;
