import type { Knex } from 'knex';
import { jsonb, type ThresholdCrossingKind, type ThresholdCrossingRow } from '../../db/tables';

/** A threshold (or the end of an allowance's tolerance) a customer's period usage has crossed. */
export interface Crossing {
  customerId: string;
  metric: string;
  periodStart: Date;
  periodEnd: Date;
  allowance: number;
  kind: ThresholdCrossingKind;
  /** The threshold; for `exhausted`, where the policy stops (100 for block, 125 for 1.25). */
  percent: number;
  /** The period's usage when the crossing was seen (a decimal string). */
  quantity: string;
}

/** The primary key of a crossing, as text: the same crossing always gives the same key. */
export const crossingKey = (c: Pick<Crossing, 'customerId' | 'metric' | 'periodStart' | 'allowance' | 'kind' | 'percent'>) =>
  `${c.customerId}|${c.metric}|${c.periodStart.getTime()}|${c.allowance}|${c.kind}|${c.percent}`;

/** The key of a stored row (its bigint allowance read as a string). */
const rowKey = (r: Pick<ThresholdCrossingRow, 'customer_id' | 'metric' | 'period_start' | 'allowance' | 'kind' | 'percent'>) =>
  crossingKey({ customerId: r.customer_id, metric: r.metric, periodStart: r.period_start, allowance: Number(r.allowance), kind: r.kind, percent: r.percent });

export function createCrossingsRepository() {
  return {
    /**
     * Records crossings; returns those this call inserted, in the order given (the caller writes
     * their events in the same transaction), not those already recorded, by this instance or another. A concurrent
     * insert of the same key waits for the first to commit or roll back. Rows go in key order, so
     * two instances inserting overlapping sets lock them in the same order (no deadlock).
     */
    async insertNew(trx: Knex, crossings: readonly Crossing[]): Promise<Crossing[]> {
      if (crossings.length === 0) return [];
      const sorted = crossings
        .map((c) => ({ key: crossingKey(c), c }))
        .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
        .map((k) => k.c);
      const rows = await trx('usage_threshold_crossings')
        .insert(
          sorted.map((c) => ({
            customer_id: c.customerId,
            metric: c.metric,
            period_start: c.periodStart,
            period_end: c.periodEnd,
            allowance: c.allowance,
            kind: c.kind,
            percent: c.percent,
            quantity: c.quantity,
            event_id: null,
          })),
        )
        .onConflict(['customer_id', 'metric', 'period_start', 'allowance', 'kind', 'percent'])
        .ignore()
        .returning(['customer_id', 'metric', 'period_start', 'allowance', 'kind', 'percent']);
      const inserted = new Set(rows.map(rowKey));
      return crossings.filter((c) => inserted.has(crossingKey(c)));
    },

    /** Notes which event announced each crossing: one statement, in the transaction of the insert. */
    async setEventIds(trx: Knex, announced: readonly { crossing: Crossing; eventId: string }[]): Promise<void> {
      if (announced.length === 0) return;
      const rows = announced.map(({ crossing: c, eventId }) => ({
        customer_id: c.customerId,
        metric: c.metric,
        period_start: c.periodStart.toISOString(),
        allowance: c.allowance,
        kind: c.kind,
        percent: c.percent,
        event_id: eventId,
      }));
      await trx.raw(
        `update usage_threshold_crossings c set event_id = a.event_id
           from jsonb_to_recordset(?::jsonb) as a(customer_id uuid, metric text, period_start timestamptz, allowance bigint, kind text, percent int, event_id text)
          where (c.customer_id, c.metric, c.period_start, c.allowance, c.kind, c.percent) = (a.customer_id, a.metric, a.period_start, a.allowance, a.kind, a.percent)`,
        [jsonb(rows)],
      );
    },
  };
}

export type CrossingsRepository = ReturnType<typeof createCrossingsRepository>;
