import { z } from 'zod';
import { iso, uuid } from '../../http/common-schemas';
import { obj, page, timestamp } from '../../http/response-schemas';
import { EVENT_FILTERS, EVENT_TYPES } from './event-types';
import type { Event } from './events-repository';
import { EVENT_ID_RE } from './events-service';

const eventId = z.string().regex(EVENT_ID_RE, 'must be an event id (evt_ and 32 hex digits)');

/** A malformed id names no event: 404, as for every other id in a path. */
export const eventParams = z.object({ id: eventId });

const TYPE_FILTERS = EVENT_FILTERS.filter((f) => f !== '*') as [string, ...string[]];

export const listEventsQuery = z.strictObject({
  /** One type, or every type of one object (`license.*`). */
  type: z.enum(TYPE_FILTERS).optional(),
  customer_id: uuid.optional(),
  /** The cursor: an event id (a page's `next_cursor`); the events older than it. */
  after: eventId.optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
});

/** The types a `type` filter stands for. */
export const typesOf = (filter: string): string[] => (filter.endsWith('.*') ? EVENT_TYPES.filter((t) => t.startsWith(filter.slice(0, -1))) : [filter]);

/** An event as the API shows it (and as webhook deliveries carry it). */
export const eventJson = (e: Event) => ({
  id: e.id,
  type: e.type,
  created_at: iso(e.createdAt),
  customer_id: e.customerId,
  data: e.data,
});

const event = obj({
  id: z.string(),
  type: z.string(),
  created_at: timestamp,
  customer_id: z.string().nullable(),
  data: z.record(z.string(), z.unknown()),
});

export const eventResponse = obj({ event });
export const eventsResponse = page(event);
