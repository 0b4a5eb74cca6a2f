import { defineRoute, type HandlersFor } from '../../http/route';
import { json } from '../../http/response-schemas';
import { eventJson, eventParams, eventResponse, eventsResponse, listEventsQuery, typesOf } from './events-schemas';
import type { EventsService } from './events-service';

export function eventsRouteSpecs() {
  return {
    getEvents: defineRoute({
      method: 'get',
      path: '/api/events',
      auth: 'admin',
      summary: 'List events, newest first',
      description:
        '`type` is one event type or every type of one object (`license.*`). `after` is the cursor: an event id ' +
        '(a page’s `next_cursor`); the page holds the events older than it.',
      request: { query: listEventsQuery },
      responses: { 200: json(eventsResponse, 'A page of events; `next_cursor` (an event id) fetches the next as `after`') },
    }),
    getEventsById: defineRoute({
      method: 'get',
      path: '/api/events/:id',
      auth: 'admin',
      summary: 'Get an event',
      request: { params: eventParams },
      responses: { 200: json(eventResponse, 'The event') },
    }),
  };
}

export function eventsHandlers(events: EventsService): HandlersFor<ReturnType<typeof eventsRouteSpecs>> {
  return {
    getEvents: async ({ query }) => {
      const rows = await events.list({
        types: query.type ? typesOf(query.type) : undefined,
        customerId: query.customer_id,
        beforeId: query.after,
        limit: query.limit + 1,
      });
      const items = rows.slice(0, query.limit);
      // The cursor is the last event's id itself (Stripe's `starting_after`): `after=<next_cursor>`.
      const nextCursor = rows.length > query.limit ? items[items.length - 1]!.id : null;
      return { status: 200, body: { data: items.map(eventJson), next_cursor: nextCursor } };
    },
    getEventsById: async ({ params }) => {
      return { status: 200, body: { event: eventJson(await events.get(params.id)) } };
    },
  };
}
