import { randomUUID } from 'node:crypto';
import type dns from 'node:dns';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { Config } from '../../config';
import { NotFoundError } from '../../errors/app-error';
import type { ActorContext } from '../../lib/request-context';
import type { AuditService } from '../audit/audit-service';
import type { EventEmitter } from '../events/events-service';
import { newEventId } from '../events/events-service';
import type { AttemptOutcome, ClaimedDelivery, DeliveryRepository } from './delivery-repository';
import { createSender, type SendResult } from './delivery-sender';
import type { SecretBox } from './secret-box';
import type { WebhookEndpoint, WebhookEndpointsRepository } from './webhook-endpoints-repository';
import { webhookEndpointJson } from './webhook-endpoints-schemas';

export interface DeliveryServiceDeps {
  db: Knex;
  repo: DeliveryRepository;
  /** The endpoints as their own module reads them, and which of their secrets sign now (activeSecrets). */
  endpoints: Pick<WebhookEndpointsRepository, 'findById' | 'activeSecrets'>;
  events: EventEmitter;
  audit: AuditService;
  secretBox: SecretBox;
  logger: Logger;
  settings: Config['webhooks'];
  /** DNS for the connection-time destination check (tests inject one). */
  resolve?: typeof dns.lookup;
  random?: () => number;
  now?: () => number;
  /** Observes each attempt (metrics). */
  onAttempt?: (outcome: 'delivered' | 'failed', seconds: number) => void;
  /** Observes endpoints disabled for failing (metrics, logs). */
  onDisabled?: (endpointIds: string[]) => void;
}

/** A claimed delivery with the secrets that sign it. Never logged. */
export interface ReadyDelivery extends ClaimedDelivery {
  secrets: string[];
}

/**
 * Webhook deliveries: what the delivery worker claims, attempts and records, and what admins do
 * with deliveries (test an endpoint now, read its attempts, resend an event). docs/WEBHOOKS.md and
 * docs/decisions/webhook-deliveries.md say why it works this way.
 */
export function createDeliveryService(deps: DeliveryServiceDeps) {
  const { db, repo, events, audit, secretBox, logger, settings } = deps;
  const random = deps.random ?? Math.random;
  const now = deps.now ?? Date.now;
  const sender = createSender({
    policy: { allowHttp: settings.allowHttp, allowPrivate: settings.allowPrivate },
    timeoutMs: settings.timeoutMs,
    resolve: deps.resolve,
    now: deps.now,
  });
  /** The synchronous test attempt holds its delivery this long: the timeout, and time to record it. */
  const testLeaseSeconds = Math.ceil(settings.timeoutMs / 1000) + 30;

  /** The secrets in force for these endpoints, opened; an endpoint whose secret cannot be opened gets none (and fails, logged). */
  async function secretsFor(endpointIds: string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (const { endpointId, ciphertext } of await deps.endpoints.activeSecrets(db, endpointIds, new Date(now()))) {
      try {
        const list = out.get(endpointId) ?? [];
        list.push(secretBox.open(ciphertext, endpointId));
        out.set(endpointId, list);
      } catch (err) {
        logger.error({ endpointId, error: (err as Error).message }, 'a webhook endpoint secret could not be opened (WEBHOOK_SECRETS_KEY)');
      }
    }
    return out;
  }

  /** The next attempt's delay after `attempts` attempts (up to 10% jitter), or null after the last. */
  function retryDelayMs(attempts: number): number | null {
    const base = settings.retryScheduleMs[attempts - 1];
    return base === undefined ? null : Math.round(base * (1 + random() * 0.1));
  }

  const outcomeOf = (d: ClaimedDelivery, r: SendResult): AttemptOutcome => ({
    deliveryId: d.id,
    endpointId: d.endpointId,
    eventId: d.eventId,
    outcome: r.outcome,
    status: r.status,
    durationMs: r.durationMs,
    responseBody: r.responseBody,
    error: r.error,
    retryInMs: r.outcome === 'delivered' ? null : retryDelayMs(d.attempts + 1),
  });

  async function attempt(d: ReadyDelivery): Promise<SendResult> {
    const r = await sender.send({ url: d.url, event: d.event, secrets: d.secrets });
    deps.onAttempt?.(r.outcome, r.durationMs / 1000);
    return r;
  }

  /**
   * Writes a batch of outcomes in one transaction: the attempts, the deliveries' states, each
   * endpoint's health, and disables those failing for WEBHOOK_DISABLE_AFTER without a success,
   * with a webhook_endpoint.disabled event (to the other endpoints that want it) in the same
   * transaction.
   */
  async function record(outcomes: readonly AttemptOutcome[], by: string): Promise<string[]> {
    if (outcomes.length === 0) return [];
    const health = new Map<string, { endpointId: string; succeeded: boolean; lastSucceeded: boolean }>();
    for (const o of outcomes) {
      const h = health.get(o.endpointId) ?? { endpointId: o.endpointId, succeeded: false, lastSucceeded: false };
      h.succeeded ||= o.outcome === 'delivered';
      h.lastSucceeded = o.outcome === 'delivered';
      health.set(o.endpointId, h);
    }
    const disabled = await db.transaction(async (trx) => {
      await repo.recordAttempts(trx, outcomes, by);
      await repo.markEndpoints(trx, [...health.values()]);
      const failing = [...health.values()].filter((h) => !h.lastSucceeded).map((h) => h.endpointId);
      const rows = await repo.disableFailing(trx, failing, settings.disableAfterMs);
      if (rows.length > 0) {
        await events.emit(
          trx,
          rows.map((w) => ({ type: 'webhook_endpoint.disabled' as const, customerId: null, data: webhookEndpointJson(w) })),
        );
      }
      return rows.map((w) => w.id);
    });
    if (disabled.length > 0) {
      logger.warn({ endpointIds: disabled }, 'webhook endpoints disabled: failing without a success for WEBHOOK_DISABLE_AFTER');
      deps.onDisabled?.(disabled);
    }
    return disabled;
  }

  async function endpointOr404(id: string): Promise<WebhookEndpoint> {
    const w = await deps.endpoints.findById(db, id);
    if (!w) throw new NotFoundError('Webhook endpoint');
    return w;
  }

  return {
    retryDelayMs,
    outcomeOf,
    attempt,
    record,

    /** Claims due deliveries (see the repository) and opens their endpoints' secrets. */
    async claim(opts: Parameters<DeliveryRepository['claim']>[1]): Promise<ReadyDelivery[]> {
      const claimed = await repo.claim(db, opts);
      if (claimed.length === 0) return [];
      const secrets = await secretsFor(claimed.map((d) => d.endpointId));
      return claimed.map((d) => ({ ...d, secrets: secrets.get(d.endpointId) ?? [] }));
    },
    extendLeases: (ids: string[], leaseSeconds: number, by: string) => repo.extendLeases(db, ids, leaseSeconds, by),
    release: (ids: string[], by: string) => repo.release(db, ids, by),

    /**
     * POST /api/webhook-endpoints/:id/test: a webhook_endpoint.test event for this endpoint alone,
     * attempted now; its outcome recorded like any other (a failure is retried on schedule).
     */
    async test(ctx: ActorContext, endpointId: string) {
      const by = `test:${randomUUID()}`;
      const d = await db.transaction(async (trx) => {
        const w = await deps.endpoints.findById(trx, endpointId);
        if (!w) throw new NotFoundError('Webhook endpoint');
        const eventId = newEventId(now());
        const claimed = await repo.insertTestEvent(trx, { id: eventId, data: webhookEndpointJson(w) }, w.id, { seconds: testLeaseSeconds, by });
        await audit.record(trx, ctx, {
          action: 'webhook_endpoint.test',
          outcome: 'success',
          targetType: 'webhook_endpoint',
          targetId: w.id,
          details: { event_id: eventId },
        });
        return claimed;
      });
      const secrets = await secretsFor([d.endpointId]);
      const result = await attempt({ ...d, secrets: secrets.get(d.endpointId) ?? [] });
      await record([outcomeOf(d, result)], by);
      const delivery = (await repo.findDelivery(db, d.id))!;
      return { eventId: d.eventId, delivery, attempt: result };
    },

    /** GET /api/webhook-endpoints/:id/deliveries: the endpoint's attempts, newest first. */
    async listAttempts(endpointId: string, opts: { beforeId?: string; limit: number }) {
      await endpointOr404(endpointId);
      return repo.listAttempts(db, endpointId, opts);
    },

    /**
     * POST /api/events/:id/resend: the event queued again, due now with a fresh schedule, to one
     * endpoint or to every enabled endpoint that wants it.
     */
    async resend(ctx: ActorContext, eventId: string, endpointId: string | null) {
      return db.transaction(async (trx) => {
        const event = await repo.eventExists(trx, eventId);
        if (!event) throw new NotFoundError('Event');
        if (endpointId !== null && !(await deps.endpoints.findById(trx, endpointId))) throw new NotFoundError('Webhook endpoint');
        const targets = endpointId !== null ? [endpointId] : await repo.endpointsWanting(trx, event.type);
        const deliveries = await repo.requeue(trx, eventId, targets);
        await audit.record(trx, ctx, {
          action: 'event.resend',
          outcome: 'success',
          targetType: 'event',
          targetId: eventId,
          details: { endpoint_id: endpointId, queued: deliveries.length },
        });
        return deliveries;
      });
    },

    backlog: () => repo.backlog(db),

    close(): void {
      sender.close();
    },
  };
}

export type DeliveryService = ReturnType<typeof createDeliveryService>;
