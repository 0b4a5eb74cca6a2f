import type { Knex } from 'knex';
import { uuidv7 } from '../../lib/ids';
import type { EventType } from './event-types';
import type { EventsRepository } from './events-repository';

export interface EventInput {
  type: EventType;
  /** The customer the event is about, when there is one. */
  customerId?: string | null;
  /** The object as the API shows it after the change (its `*Json` shape); never a secret. */
  data: Record<string, unknown>;
}

/** evt_ + a UUIDv7 in hex: time-ordered, and the same `webhook-id` on every delivery of it. */
export const newEventId = (now = Date.now()): string => `evt_${uuidv7(now).replace(/-/g, '')}`;

export interface EventsServiceDeps {
  db: Knex;
  repo: EventsRepository;
  now?: () => number;
}

export function createEventsService({ repo, now = Date.now }: EventsServiceDeps) {
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
  };
}

export type EventsService = ReturnType<typeof createEventsService>;
/** What other modules need: to record events in their own transaction. */
export type EventEmitter = Pick<EventsService, 'emit'>;
