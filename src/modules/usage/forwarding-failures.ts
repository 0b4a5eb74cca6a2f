import type { Knex } from 'knex';
import type { EventEmitter, EventInput } from '../events/events-service';
import type { FailedUsageEvent, ForwardingRepository } from './forwarding-repository';

/** Most usage event ids one usage.forwarding_failed names (`count` tells how many failed). */
export const MAX_NAMED_EVENTS = 100;

/**
 * One usage.forwarding_failed per customer among `failed` (one batch: a Stripe call, or one error
 * report): how many, why (each distinct error, as last_error keeps it), the metric when they share
 * one, and the ids of up to MAX_NAMED_EVENTS of them. `context` says where the failure came from.
 */
export function forwardingFailedEvents(failed: readonly FailedUsageEvent[], context: Record<string, unknown>): EventInput[] {
  const byCustomer = new Map<string, FailedUsageEvent[]>();
  for (const e of [...failed].sort((a, b) => a.id.localeCompare(b.id))) byCustomer.set(e.customerId, [...(byCustomer.get(e.customerId) ?? []), e]);
  return [...byCustomer].map(([customerId, events]) => {
    const metrics = [...new Set(events.map((e) => e.metric))].sort();
    const reasons = [...new Set(events.map((e) => e.lastError ?? 'unknown'))];
    return {
      type: 'usage.forwarding_failed',
      customerId,
      data: {
        customer_id: customerId,
        count: events.length,
        reason: reasons.join('; ').slice(0, 1000),
        ...(metrics.length === 1 ? { metric: metrics[0] } : {}),
        metrics,
        event_ids: events.slice(0, MAX_NAMED_EVENTS).map((e) => e.id),
        ...context,
      },
    };
  });
}

/** Records the events for usage events just marked failed, in the transaction that marked them. */
export function createForwardingFailures({ repo, events }: { repo: Pick<ForwardingRepository, 'describe'>; events: EventEmitter }) {
  return {
    async record(trx: Knex, ids: readonly string[], context: Record<string, unknown>): Promise<void> {
      if (ids.length === 0) return;
      await events.emit(trx, forwardingFailedEvents(await repo.describe(trx, ids), context));
    },
  };
}

export type ForwardingFailures = ReturnType<typeof createForwardingFailures>;
