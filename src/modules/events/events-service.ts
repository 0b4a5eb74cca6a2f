import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { NotFoundError } from '../../errors/app-error';
import type { EventType } from './event-types';
import type { Event, EventFilter, EventsRepository } from './events-repository';

export interface EventInput {
  type: EventType;
  /** The customer the event is about, when there is one. */
  customerId?: string | null;
  /** The object as the API shows it after the change (its `*Json` shape); never a secret. */
  data: Record<string, unknown>;
}

/**
 * evt_ + a UUIDv7 in hex: time-ordered, and the same `webhook-id` on every delivery of it. Events made
 * in the same millisecond by one process keep their order too (RFC 9562's method 1: the 12 bits after
 * the version are a counter within the millisecond, started at a random value in its lower half), so
 * "newest first" is the order a change wrote its events in.
 */
export function eventIdSource() {
  let lastMs = -1;
  let seq = 0;
  return (now = Date.now()): string => {
    // A clock stepped back by a little (a smear, a small correction) keeps counting on from the last
    // millisecond; one set back further starts again from its own time, so ids keep meaning "when".
    let ms = now < lastMs && lastMs - now <= 1000 ? lastMs : now;
    if (ms === lastMs) {
      seq++;
      if (seq > 0xfff) {
        ms++;
        seq = 0;
      }
    } else {
      seq = randomBytes(2).readUInt16BE(0) & 0x7ff;
    }
    lastMs = ms;
    const rand = randomBytes(8);
    rand[0] = (rand[0]! & 0x3f) | 0x80; // the variant bits
    return `evt_${ms.toString(16).padStart(12, '0')}7${seq.toString(16).padStart(3, '0')}${rand.toString('hex')}`;
  };
}

export const newEventId = eventIdSource();

/** What an event id looks like (the events table checks the same pattern). */
export const EVENT_ID_RE = /^evt_[0-9a-f]{32}$/;

export interface EventsServiceDeps {
  db: Knex;
  repo: EventsRepository;
  now?: () => number;
  /** EVENT_RETENTION_DAYS: older events are deleted by purgeExpired (events-retention.ts). */
  retentionDays?: number;
}

/** Events deleted per statement: short transactions, short locks, however far behind retention is. */
const PURGE_BATCH = 1000;

export function createEventsService({ db, repo, now = Date.now, retentionDays = 30 }: EventsServiceDeps) {
  const nextId = eventIdSource();
  return {
    /**
     * Records events in the caller's transaction: a change and the events describing it commit or
     * roll back together. Returns their ids, in order.
     */
    async emit(trx: Knex, input: EventInput | readonly EventInput[]): Promise<string[]> {
      const list = Array.isArray(input) ? (input as readonly EventInput[]) : [input as EventInput];
      const events = list.map((e) => ({ id: nextId(now()), type: e.type, customerId: e.customerId ?? null, data: e.data }));
      await repo.insert(trx, events);
      return events.map((e) => e.id);
    },

    list(filter: EventFilter): Promise<Event[]> {
      return repo.list(db, filter);
    },

    async get(id: string): Promise<Event> {
      const event = await repo.findById(db, id);
      if (!event) throw new NotFoundError('Event');
      return event;
    },

    /**
     * Deletes events older than EVENT_RETENTION_DAYS, batch after batch, until none is left or
     * `maxBatches` ran (the next run goes on). Events with a delivery still pending are kept.
     * Returns how many were deleted.
     */
    async purgeExpired(opts: { batchSize?: number; maxBatches?: number } = {}): Promise<number> {
      const batchSize = opts.batchSize ?? PURGE_BATCH;
      const cutoff = new Date(now() - retentionDays * 86_400_000);
      let total = 0;
      for (let i = 0; i < (opts.maxBatches ?? 100); i++) {
        const n = await repo.deleteExpired(db, cutoff, batchSize);
        total += n;
        if (n < batchSize) break;
      }
      return total;
    },
  };
}

export type EventsService = ReturnType<typeof createEventsService>;
/** What other modules need: to record events in their own transaction. */
export type EventEmitter = Pick<EventsService, 'emit'>;
