import type { Knex } from 'knex';
import type { WebhookAttemptOutcome, WebhookDeliveryRow, WebhookDeliveryState, WebhookEndpointRow } from '../../db/tables';
import { filtersTakeSql } from '../events/event-types';
import { toEndpoint, type WebhookEndpoint } from './webhook-endpoints-repository';

/** A delivery claimed for an attempt: the event it carries and where it goes. */
export interface ClaimedDelivery {
  id: string;
  eventId: string;
  endpointId: string;
  url: string;
  /** Attempts made before this one. */
  attempts: number;
  event: { id: string; type: string; customerId: string | null; data: Record<string, unknown>; createdAt: Date };
}

export interface Delivery {
  id: string;
  eventId: string;
  endpointId: string;
  state: WebhookDeliveryState;
  attempts: number;
  nextAttemptAt: Date | null;
  lastAttemptAt: Date | null;
  lastStatus: number | null;
  lastError: string | null;
  deliveredAt: Date | null;
  createdAt: Date;
}

/** One attempt's outcome, as the worker or the test route hands it in. */
export interface AttemptOutcome {
  deliveryId: string;
  endpointId: string;
  eventId: string;
  outcome: WebhookAttemptOutcome;
  status: number | null;
  durationMs: number;
  responseBody: string | null;
  error: string | null;
  /** A failed attempt: the delay before the next one, or null when it was the last. */
  retryInMs: number | null;
}

export interface AttemptEntry {
  id: string;
  eventId: string;
  eventType: string;
  attemptedAt: Date;
  outcome: WebhookAttemptOutcome;
  status: number | null;
  durationMs: number;
  responseBody: string | null;
  error: string | null;
}

export interface DeliveryBacklog {
  /** Seconds since the oldest delivery still pending to an enabled endpoint was written; 0 when none. */
  oldestPendingSeconds: number;
  disabledEndpoints: number;
}

const toDelivery = (r: WebhookDeliveryRow): Delivery => ({
  id: String(r.id),
  eventId: r.event_id,
  endpointId: r.endpoint_id,
  state: r.state,
  attempts: r.attempts,
  nextAttemptAt: r.state === 'pending' ? r.next_attempt_at : null,
  lastAttemptAt: r.last_attempt_at,
  lastStatus: r.last_status,
  lastError: r.last_error,
  deliveredAt: r.delivered_at,
  createdAt: r.created_at,
});

type ClaimRow = Pick<WebhookDeliveryRow, 'id' | 'event_id' | 'endpoint_id' | 'attempts'> & {
  url: string;
  type: string;
  customer_id: string | null;
  data: Record<string, unknown>;
  event_created_at: Date;
};

/*
 * The claim. Each enabled endpoint offers its due deliveries, oldest first, up to the room it has
 * left in this instance (WEBHOOK_ENDPOINT_CONCURRENCY less what is in flight to it here), each
 * through the (endpoint_id, next_attempt_at) index and SKIP LOCKED; then the first of every
 * endpoint go before the second of any (row_number per endpoint), up to the free slots. So one
 * endpoint's backlog of a million never pushes another's delivery back, and the statement's cost
 * follows the slots and the endpoints, not the backlog. The lease is next_attempt_at moved past its
 * end (so the due index serves both), with leased_until/leased_by saying who holds it.
 */
const CLAIM_SQL = `
with room as (
  select * from unnest(:busyIds::uuid[], :busyRoom::int[]) as r(endpoint_id, room)
),
offered as (
  select d.id, d.endpoint_id, d.next_attempt_at
    from webhook_endpoints w
    left join room on room.endpoint_id = w.id
    cross join lateral (
      select x.id, x.endpoint_id, x.next_attempt_at
        from webhook_deliveries x
       where x.endpoint_id = w.id and x.state = 'pending' and x.next_attempt_at <= now()
       order by x.next_attempt_at
       limit greatest(coalesce(room.room, :perEndpoint), 0)
         for update of x skip locked
    ) d
   where not w.disabled
),
chosen as (
  select id from (
    select id, next_attempt_at, row_number() over (partition by endpoint_id order by next_attempt_at, id) as turn from offered
  ) o
  order by turn, next_attempt_at
  limit :limit
),
claimed as (
  update webhook_deliveries d
     set next_attempt_at = now() + make_interval(secs => :lease), leased_until = now() + make_interval(secs => :lease), leased_by = :by
    from chosen
   where d.id = chosen.id
  returning d.id, d.event_id, d.endpoint_id, d.attempts
)
select c.id, c.event_id, c.endpoint_id, c.attempts, w.url, e.type, e.customer_id, e.data, e.created_at as event_created_at
  from claimed c
  join events e on e.id = c.event_id
  join webhook_endpoints w on w.id = c.endpoint_id`;

const toClaimed = (r: ClaimRow): ClaimedDelivery => ({
  id: String(r.id),
  eventId: r.event_id,
  endpointId: r.endpoint_id,
  url: r.url,
  attempts: r.attempts,
  event: { id: r.event_id, type: r.type, customerId: r.customer_id, data: r.data, createdAt: r.event_created_at },
});

export function createDeliveryRepository() {
  return {
    /**
     * Leases up to `limit` due deliveries to enabled endpoints for `by`, fairly across endpoints,
     * none past an endpoint's room (`busy`: endpoint -> deliveries already in flight to it here).
     */
    async claim(
      db: Knex,
      opts: { limit: number; perEndpoint: number; busy: ReadonlyMap<string, number>; leaseSeconds: number; by: string },
    ): Promise<ClaimedDelivery[]> {
      if (opts.limit <= 0) return [];
      const busy = [...opts.busy].filter(([, n]) => n > 0);
      const { rows }: { rows: ClaimRow[] } = await db.raw(CLAIM_SQL, {
        busyIds: busy.map(([id]) => id),
        busyRoom: busy.map(([, n]) => opts.perEndpoint - n),
        perEndpoint: opts.perEndpoint,
        limit: opts.limit,
        lease: opts.leaseSeconds,
        by: opts.by,
      });
      return rows.map(toClaimed);
    },

    /** Renews the leases `by` holds on deliveries still pending, in one statement. */
    async extendLeases(db: Knex, ids: string[], leaseSeconds: number, by: string): Promise<void> {
      if (ids.length === 0) return;
      await db.raw(
        `update webhook_deliveries set next_attempt_at = now() + make_interval(secs => ?), leased_until = now() + make_interval(secs => ?)
          where id = any(?::bigint[]) and state = 'pending' and leased_by = ?`,
        [leaseSeconds, leaseSeconds, ids, by],
      );
    },

    /** Gives back deliveries claimed but not attempted: due again now, no attempt counted. */
    async release(db: Knex, ids: string[], by: string): Promise<void> {
      if (ids.length === 0) return;
      await db.raw(
        `update webhook_deliveries set next_attempt_at = now(), leased_until = null, leased_by = null
          where id = any(?::bigint[]) and state = 'pending' and leased_by = ?`,
        [ids, by],
      );
    },

    /**
     * Writes attempts' outcomes: every attempt row, each delivery's new state (delivered, due again
     * after its delay, or failed after the last), in one statement each. A failure is written only
     * by the holder of the lease (another instance may have the delivery by now and will write its
     * own); a success by anyone. Returns the deliveries changed.
     */
    async recordAttempts(trx: Knex, outcomes: readonly AttemptOutcome[], by: string): Promise<void> {
      if (outcomes.length === 0) return;
      await trx('webhook_attempts').insert(
        outcomes.map((o) => ({
          delivery_id: o.deliveryId,
          endpoint_id: o.endpointId,
          event_id: o.eventId,
          outcome: o.outcome,
          status: o.status,
          duration_ms: o.durationMs,
          response_body: o.responseBody,
          error: o.error,
        })),
      );
      await trx.raw(
        `update webhook_deliveries d
            set attempts = d.attempts + 1,
                state = case when o.outcome = 'delivered' then 'delivered' when o.retry_ms is null then 'failed' else 'pending' end,
                next_attempt_at = case when o.outcome = 'failed' and o.retry_ms is not null
                                       then now() + make_interval(secs => o.retry_ms / 1000.0) else d.next_attempt_at end,
                delivered_at = case when o.outcome = 'delivered' then now() else d.delivered_at end,
                leased_until = null, leased_by = null,
                last_attempt_at = now(), last_status = o.status, last_error = o.error
           from unnest(?::bigint[], ?::text[], ?::int[], ?::text[], ?::float8[]) as o(id, outcome, status, error, retry_ms)
          where d.id = o.id and d.state = 'pending' and (o.outcome = 'delivered' or d.leased_by = ?)`,
        [
          outcomes.map((o) => o.deliveryId),
          outcomes.map((o) => o.outcome),
          outcomes.map((o) => o.status),
          outcomes.map((o) => o.error),
          outcomes.map((o) => o.retryInMs),
          by,
        ] as unknown as readonly Knex.RawBinding[],
      );
    },

    /**
     * Each endpoint's health after a batch of attempts: `succeeded` (one got a 2xx) sets
     * last_success_at; failing_since is cleared when the last attempt succeeded, otherwise set on the
     * first failure after a success. A run of successes writes the row at most once a second.
     */
    async markEndpoints(trx: Knex, health: readonly { endpointId: string; succeeded: boolean; lastSucceeded: boolean }[]): Promise<void> {
      if (health.length === 0) return;
      await trx.raw(
        `update webhook_endpoints w
            set last_success_at = case when o.succeeded then now() else w.last_success_at end,
                failing_since = case when o.last_ok then null when o.succeeded then now() else coalesce(w.failing_since, now()) end
           from unnest(?::uuid[], ?::bool[], ?::bool[]) as o(id, succeeded, last_ok)
          where w.id = o.id
            and (not o.last_ok or w.failing_since is not null or w.last_success_at is null or w.last_success_at < now() - interval '1 second')`,
        [health.map((h) => h.endpointId), health.map((h) => h.succeeded), health.map((h) => h.lastSucceeded)],
      );
    },

    /**
     * Disables those of these endpoints that have failed for `afterMs` without a success since, and
     * returns them (an endpoint already disabled is not returned again, even by another instance).
     */
    async disableFailing(trx: Knex, endpointIds: string[], afterMs: number): Promise<WebhookEndpoint[]> {
      if (endpointIds.length === 0) return [];
      const { rows }: { rows: WebhookEndpointRow[] } = await trx.raw(
        `update webhook_endpoints
            set disabled = true, disabled_reason = 'failing', disabled_at = now(), updated_at = now()
          where id = any(?::uuid[]) and not disabled and failing_since is not null
            and failing_since <= now() - make_interval(secs => ? / 1000.0)
            and (last_success_at is null or last_success_at < failing_since)
      returning *`,
        [[...new Set(endpointIds)], afterMs],
      );
      return rows.map(toEndpoint);
    },

    async eventExists(db: Knex, id: string): Promise<{ id: string; type: string } | undefined> {
      return db('events').select('id', 'type').where({ id }).first();
    },

    /** The test event, and one delivery of it to this endpoint alone, leased by `by` for the attempt made now. */
    async insertTestEvent(
      trx: Knex,
      event: { id: string; data: Record<string, unknown> },
      endpointId: string,
      lease: { seconds: number; by: string },
    ): Promise<ClaimedDelivery> {
      await trx.raw(`insert into events (id, type, customer_id, data) values (?, 'webhook_endpoint.test', null, ?::jsonb)`, [
        event.id,
        JSON.stringify(event.data),
      ]);
      const { rows }: { rows: ClaimRow[] } = await trx.raw(
        `with d as (
           insert into webhook_deliveries (event_id, endpoint_id, next_attempt_at, leased_until, leased_by)
           values (?, ?, now() + make_interval(secs => ?), now() + make_interval(secs => ?), ?)
           returning id, event_id, endpoint_id, attempts)
         select d.id, d.event_id, d.endpoint_id, d.attempts, w.url, e.type, e.customer_id, e.data, e.created_at as event_created_at
           from d join events e on e.id = d.event_id join webhook_endpoints w on w.id = d.endpoint_id`,
        [event.id, endpointId, lease.seconds, lease.seconds, lease.by],
      );
      return toClaimed(rows[0]!);
    },

    async findDelivery(db: Knex, id: string): Promise<Delivery | undefined> {
      const row = await db('webhook_deliveries').where({ id }).first();
      return row ? toDelivery(row) : undefined;
    },

    /**
     * Queues an event again: for each endpoint, its delivery back to pending and due now with a fresh
     * retry schedule (made if there was none). One being attempted right now is left as it is (it is
     * pending already, and two attempts at once are never made). Returns the deliveries.
     */
    async requeue(trx: Knex, eventId: string, endpointIds: string[]): Promise<Delivery[]> {
      if (endpointIds.length === 0) return [];
      await trx.raw(
        `insert into webhook_deliveries (event_id, endpoint_id)
         select ?, unnest(?::uuid[])
         on conflict (endpoint_id, event_id) do update
            set state = 'pending', attempts = 0, next_attempt_at = now(), leased_until = null, leased_by = null, delivered_at = null
          where webhook_deliveries.state <> 'pending' or webhook_deliveries.leased_until is null or webhook_deliveries.leased_until <= now()`,
        [eventId, endpointIds],
      );
      const all = await trx('webhook_deliveries').where({ event_id: eventId }).whereIn('endpoint_id', endpointIds).orderBy('id');
      return all.map(toDelivery);
    },

    /** The enabled endpoints whose filter takes this event type. */
    async endpointsWanting(db: Knex, type: string): Promise<string[]> {
      const { rows }: { rows: { id: string }[] } = await db.raw(
        `select id from webhook_endpoints where not disabled and ${filtersTakeSql('events', ':type::text')} order by created_at, id`,
        { type },
      );
      return rows.map((r) => r.id);
    },

    /** An endpoint's attempts, newest first, before the cursor. */
    async listAttempts(db: Knex, endpointId: string, opts: { beforeId?: string; limit: number }): Promise<AttemptEntry[]> {
      const q = db('webhook_attempts as a')
        .join('events as e', 'e.id', 'a.event_id')
        .select('a.id', 'a.event_id', 'e.type', 'a.attempted_at', 'a.outcome', 'a.status', 'a.duration_ms', 'a.response_body', 'a.error')
        .where('a.endpoint_id', endpointId)
        .orderBy('a.id', 'desc')
        .limit(opts.limit);
      if (opts.beforeId) void q.where('a.id', '<', opts.beforeId);
      const rows = (await q) as unknown as (Omit<AttemptEntry, 'eventId' | 'eventType' | 'attemptedAt' | 'durationMs' | 'responseBody'> & {
        event_id: string;
        type: string;
        attempted_at: Date;
        duration_ms: number;
        response_body: string | null;
      })[];
      return rows.map((r) => ({
        id: String(r.id),
        eventId: r.event_id,
        eventType: r.type,
        attemptedAt: r.attempted_at,
        outcome: r.outcome,
        status: r.status,
        durationMs: r.duration_ms,
        responseBody: r.response_body,
        error: r.error,
      }));
    },

    /** For the metrics: read when Prometheus scrapes. */
    async backlog(db: Knex): Promise<DeliveryBacklog> {
      const { rows }: { rows: { oldest: number | null; disabled: number }[] } = await db.raw(
        `select (select extract(epoch from now() - min(d.created_at))::float8
                   from webhook_deliveries d join webhook_endpoints w on w.id = d.endpoint_id and not w.disabled
                  where d.state = 'pending') as oldest,
                (select count(*)::int from webhook_endpoints where disabled) as disabled`,
      );
      return { oldestPendingSeconds: Math.max(0, rows[0]?.oldest ?? 0), disabledEndpoints: rows[0]?.disabled ?? 0 };
    },
  };
}

export type DeliveryRepository = ReturnType<typeof createDeliveryRepository>;
