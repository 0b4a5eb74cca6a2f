import type { Knex } from 'knex';
import { NotFoundError } from '../../errors/app-error';
import { uuidv7 } from '../../lib/ids';
import type { EventType } from './event-types';
import type { Event, EventFilter, EventsRepository } from './events-repository';

export interface EventInput {
  type: EventType;
  /** The customer the event is about, when there is one. */
  customerId?: string | null;
  /** The object as the API shows it after the change (its `*Json` shape); never a secret. */
  data: Record<string, unknown>;
}

/** evt_ + a UUIDv7 in hex: time-ordered, and the same `webhook-id` on every delivery of it. */
export const newEventId = (now = Date.now()): string => `evt_${uuidv7(now).replace(/-/g, '')}`;

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
  return {
    /**
     * Records events in the caller's transaction: a change and the events describing it commit or
     * roll back together. Returns their ids, in order.
     */
    async emit(trx: Knex, input: EventInput | readonly EventInput[]): Promise<string[]> {
      const list = Array.isArray(input) ? (input as readonly EventInput[]) : [input as EventInput];
      const events = list.map((e) => ({ id: newEventId(now()), type: e.type, customerId: e.customerId ?? null, data: e.data }));
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
