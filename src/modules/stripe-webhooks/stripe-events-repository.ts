import type { Knex } from 'knex';
import type { StripeEventRow } from '../../db/tables';

export interface StripeEventRecord {
  id: string;
  type: string;
  stripeCreated: number;
  objectId: string | null;
  receivedAt: Date;
  processedAt: Date | null;
  attempts: number;
  lastError: string | null;
}

const toRecord = (r: StripeEventRow): StripeEventRecord => ({
  id: r.id,
  type: r.type,
  stripeCreated: Number(r.stripe_created),
  objectId: r.object_id,
  receivedAt: r.received_at,
  processedAt: r.processed_at,
  attempts: r.attempts,
  lastError: r.last_error,
});

export interface EventHeader {
  id: string;
  type: string;
  created: number;
  objectId: string | null;
}

export function createStripeEventsRepository() {
  return {
    async isProcessed(db: Knex, id: string): Promise<boolean> {
      const row = await db('stripe_events').select('processed_at').where({ id }).first();
      return !!row?.processed_at;
    },

    /**
     * Claims an event inside the caller's transaction. The row lock makes a concurrent delivery
     * of the same event wait; once the first commits, the claim finds it processed and returns false.
     */
    async claim(trx: Knex, e: EventHeader): Promise<boolean> {
      const { rows }: { rows: Pick<StripeEventRow, 'id'>[] } = await trx.raw(
        `insert into stripe_events as s (id, type, stripe_created, object_id, attempts) values (?, ?, ?, ?, 1)
         on conflict (id) do update set attempts = s.attempts + 1 where s.processed_at is null
         returning id`,
        [e.id, e.type, e.created, e.objectId],
      );
      return rows.length > 0;
    },

    async markProcessed(trx: Knex, id: string): Promise<void> {
      await trx('stripe_events').where({ id }).update({ processed_at: trx.fn.now(), last_error: null });
    },

    /** Outside the failed transaction: the failure stays visible, and the event stays unprocessed. */
    async recordFailure(db: Knex, e: EventHeader, error: string): Promise<void> {
      await db.raw(
        `insert into stripe_events as s (id, type, stripe_created, object_id, attempts, last_error) values (?, ?, ?, ?, 1, ?)
         on conflict (id) do update set attempts = s.attempts + 1, last_error = excluded.last_error where s.processed_at is null`,
        [e.id, e.type, e.created, e.objectId, error.slice(0, 1000)],
      );
    },

    async listFailing(db: Knex, limit: number): Promise<StripeEventRecord[]> {
      return (await db('stripe_events').whereNull('processed_at').whereNotNull('last_error').orderBy('received_at', 'desc').limit(limit)).map(toRecord);
    },

    async counts(db: Knex): Promise<{ processed: number; failing: number }> {
      const { rows }: { rows: [{ processed: number; failing: number }] } = await db.raw(
        `select count(*) filter (where processed_at is not null)::int as processed,
                count(*) filter (where processed_at is null and last_error is not null)::int as failing
           from stripe_events`,
      );
      return rows[0];
    },
  };
}

export type StripeEventsRepository = ReturnType<typeof createStripeEventsRepository>;
