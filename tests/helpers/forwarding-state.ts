import type { Knex } from 'knex';

/** An event's forwarding as the tests read it: from its usage_outbox row, or from the event once that row is gone. */
export interface ForwardingRow {
  id: string;
  customer_id: string;
  state: 'pending' | 'sent' | 'failed' | 'local' | 'late';
  attempts: number;
  next_attempt_at: Date | null;
  last_error: string | null;
  sent_at: Date | null;
  stripe_submission_id: string | null;
  created_at: Date | null;
  occurred_at: Date;
  metric: string;
  quantity: string;
}

/** The forwarding of the events with these ids (in id order). */
export async function forwardingOf(db: Knex, ids: readonly string[]): Promise<ForwardingRow[]> {
  const { rows } = await db.raw<{ rows: ForwardingRow[] }>(
    `select e.id, e.customer_id,
            coalesce(o.state, case e.state when 'l' then 'local' when 't' then 'late' else 'sent' end) as state,
            coalesce(o.attempts, 0)::int as attempts, o.next_attempt_at, o.last_error, o.sent_at, o.stripe_submission_id, o.created_at, e.occurred_at, e.metric, e.quantity
       from usage_events e left join usage_outbox o on o.customer_id = e.customer_id and o.id = e.id
      where e.id = any(?::uuid[])
      order by e.id`,
    [`{${ids.join(',')}}`],
  );
  return rows;
}

/** One event's forwarding (undefined when no event has that id). */
export async function forwardingOfOne(db: Knex, id: string | undefined): Promise<ForwardingRow | undefined> {
  return id === undefined ? undefined : (await forwardingOf(db, [id]))[0];
}

/** Empties the forwarder's queue of what other test files left pending, so a test's forwarder sees its own events only. */
export async function clearPendingForwarding(db: Knex): Promise<void> {
  await db('usage_outbox').where({ state: 'pending' }).delete();
}
