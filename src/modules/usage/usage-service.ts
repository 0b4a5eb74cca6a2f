import type { Knex } from 'knex';
import { AppError, ValidationError } from '../../errors/app-error';
import type { CustomersService } from '../customers/customers-service';
import { createGroupCommit } from './group-commit';
import {
  WriteRefusedError,
  type EventToWrite,
  type ForwardingState,
  type TotalsQuery,
  type UsageEvent,
  type UsageRepository,
  type PeriodQuery,
  type StoredEvent,
} from './usage-repository';

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
  customers: Pick<CustomersService, 'assertExists'>;
  /** Stripe on: new events wait in the outbox (pending); off: they are kept as local. */
  stripeEnabled: boolean;
  now?: () => number;
  maxInFlight?: number;
  maxGroup?: number;
  /** Observes events stored (not replays), for metrics. */
  onAccepted?: (mode: 'single' | 'batch' | 'bundle', count: number) => void;
  /**
   * Told, after each write has committed, which (customer, metric) it stored new events of (never
   * replays): the threshold watch reads those periods' totals then, so whichever write commits last
   * sees every write before it.
   */
  onStored?: (stored: readonly StoredPair[]) => void;
}

/** A customer's metric that a write stored new events of. */
export interface StoredPair {
  customerId: string;
  metric: string;
}

/**
 * The distinct (customer, metric) of the events that were new. On every write, so without a key
 * string made per event (that cost about 27 us a 100-event batch): a run of the same pair is skipped
 * at once, others are looked up by customer, then metric.
 */
function storedPairs(events: readonly { customerId: string; metric: string }[], created: (i: number) => boolean): StoredPair[] {
  const seen = new Map<string, Set<string>>();
  const out: StoredPair[] = [];
  let last: { customerId: string; metric: string } | null = null;
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    if (!created(i) || (last !== null && last.customerId === e.customerId && last.metric === e.metric)) continue;
    last = e;
    let metrics = seen.get(e.customerId);
    if (!metrics) seen.set(e.customerId, (metrics = new Set()));
    if (metrics.has(e.metric)) continue;
    metrics.add(e.metric);
    out.push({ customerId: e.customerId, metric: e.metric });
  }
  return out;
}

const conflict = () => new AppError('IDEMPOTENCY_CONFLICT', 'This idempotency key was already used with a different event');

/** What a batch says of each event: its id, and whether it is new. */
export interface BatchOutcome {
  id: string;
  idempotencyKey: string;
  created: boolean;
}

/** What a usage bundle's write says of each event given, in the order given. */
export interface BundleEventOutcome {
  /** The stored event's id: new, or the one stored earlier under the same key. */
  id: string;
  /** Stored by this write. */
  created: boolean;
  /** The key is stored with another body: the event is refused. */
  conflict: boolean;
  /** Stored by this write, and late usage (it occurred before `lateBefore`). */
  late: boolean;
}

/** Events a statement of a bundle's write carries: the write's arrays stay well within what one statement handles quickly. */
const BUNDLE_CHUNK = 1000;

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

  const toWrite = (customerId: string, i: UsageInput): EventToWrite => ({
    customerId,
    metric: i.metric,
    quantity: i.quantity,
    occurredAt: i.occurredAt,
    idempotencyKey: i.idempotencyKey,
  });

  /** Single events of many customers, written together; each settles on its own. */
  async function writeGroup(events: EventToWrite[]): Promise<(Recorded | AppError)[]> {
    const outcomes = await repo.write(db, events, state, now());
    if (deps.onStored) {
      const stored = storedPairs(events, (i) => !outcomes[i]!.conflict && outcomes[i]!.created);
      if (stored.length) deps.onStored(stored);
    }
    return outcomes.map((o, i): Recorded | AppError => {
      if (o.conflict) return conflict();
      const e = events[i]!;
      // Same fingerprint: same metric and quantity; the stored times are the first request's.
      const event: UsageEvent = {
        id: o.id,
        customerId: e.customerId,
        metric: e.metric,
        quantity: e.quantity,
        occurredAt: new Date(o.occurredMs),
        idempotencyKey: e.idempotencyKey,
        receivedAt: new Date(o.receivedMs),
      };
      return { event, created: o.created };
    });
  }

  const group = createGroupCommit<EventToWrite, Recorded | AppError>({
    maxInFlight: deps.maxInFlight ?? 4,
    maxBatch: deps.maxGroup ?? 1000,
    flush: (events) => retryDeadlock(() => writeGroup(events)),
  });

  return {
    /** One event; written together with whatever else arrives at the same moment. */
    async recordOne(customerId: string, input: UsageInput): Promise<Recorded> {
      const outcome = await group.submit(toWrite(customerId, input));
      if (outcome instanceof Error) throw outcome;
      if (outcome.created) deps.onAccepted?.('single', 1);
      return outcome;
    },

    /**
     * A batch is all or nothing: one conflict and nothing of it is written. One round trip;
     * the answer names each event by id (the caller has the bodies it sent).
     */
    async recordBatch(customerId: string, inputs: UsageInput[]): Promise<BatchOutcome[]> {
      const events = inputs.map((i) => toWrite(customerId, i));
      let outcomes: StoredEvent[];
      try {
        // One statement, all or nothing: a conflict anywhere fails it whole (nothing is kept).
        outcomes = await retryDeadlock(() => repo.writeAllOrNothing(db, events, state, now()));
      } catch (err) {
        if (!(err instanceof WriteRefusedError)) throw err;
        const repeats = err.events
          .filter((e) => e.repeated)
          .map((e) => ({ index: e.index, path: `events.${e.index}.idempotency_key`, message: `repeats the key of event ${e.leader} with a different body` }));
        if (repeats.length) throw new ValidationError('Invalid usage events', repeats);
        throw conflict();
      }
      deps.onAccepted?.('batch', outcomes.filter((o) => o.created).length);
      if (deps.onStored) {
        const stored = storedPairs(events, (i) => outcomes[i]!.created);
        if (stored.length) deps.onStored(stored);
      }
      return outcomes.map((o, i) => ({ id: o.id, idempotencyKey: inputs[i]!.idempotencyKey, created: o.created }));
    },

    /**
     * A usage bundle's events (usage-bundles-service.ts), in the caller's transaction: the same write
     * as POST /api/usage, 1,000 events a statement, each event settling on its own (a conflict is
     * that event's outcome; the bundle's other events are kept). New events that occurred before
     * `lateBefore` are late usage: with Stripe on they are stored `late` (a true-up bills them, never
     * a meter event); with Stripe off `local`, like every event. Call `afterCommit` once the caller's
     * transaction has committed: the threshold watch must read committed totals.
     */
    async recordInTransaction(
      trx: Knex,
      customerId: string,
      inputs: readonly (UsageInput & { occurredAt: Date })[],
      opts: { lateBefore?: Date } = {},
    ): Promise<{ outcomes: BundleEventOutcome[]; afterCommit: () => void }> {
      const events = inputs.map((i) => toWrite(customerId, i));
      const nowMs = now();
      const outcomes: BundleEventOutcome[] = [];
      for (let from = 0; from < events.length; from += BUNDLE_CHUNK) {
        const chunk = events.slice(from, from + BUNDLE_CHUNK);
        const written = await repo.writeInTransaction(trx, chunk, state, nowMs);
        written.forEach((o, i) => {
          const fresh = o.created && !o.conflict;
          outcomes.push({
            id: o.id,
            created: fresh,
            conflict: o.conflict,
            late: fresh && opts.lateBefore !== undefined && chunk[i]!.occurredAt! < opts.lateBefore,
          });
        });
      }
      if (deps.stripeEnabled)
        await repo.markLate(
          trx,
          outcomes.filter((o) => o.late).map((o) => o.id),
        );
      const created = outcomes.filter((o) => o.created).length;
      const stored = storedPairs(events, (i) => outcomes[i]!.created);
      return {
        outcomes,
        afterCommit: () => {
          if (created) deps.onAccepted?.('bundle', created);
          if (stored.length) deps.onStored?.(stored);
        },
      };
    },

    async totals(q: TotalsQuery) {
      return repo.totals(db, q);
    },

    /** Each period's usage from the daily totals (see PeriodQuery), in the order asked. */
    periodTotals: (queries: readonly PeriodQuery[]) => repo.periodTotals(db, queries),

    async totalsForCustomer(customerId: string, q: Omit<TotalsQuery, 'customerId'>) {
      await customers.assertExists(db, customerId);
      return repo.totals(db, { ...q, customerId });
    },

    drained: () => group.drained(),
  };
}

export type UsageService = ReturnType<typeof createUsageService>;
