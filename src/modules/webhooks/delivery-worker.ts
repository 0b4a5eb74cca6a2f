import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { Knex } from 'knex';
import { Client } from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../../config';
import { createLeaseKeeper } from '../usage/forwarding-leases';
import type { AttemptOutcome } from './delivery-repository';
import type { DeliveryService, ReadyDelivery } from './delivery-service';

export interface DeliveryWorkerDeps {
  db: Knex;
  deliveries: DeliveryService;
  logger: Logger;
  settings: Pick<Config['webhooks'], 'concurrency' | 'endpointConcurrency' | 'timeoutMs'>;
  /** How long a claim holds a delivery; renewed every third of it while held. */
  leaseSeconds?: number;
  /** How often due work is looked for when no notice came (retries coming due, a lost listener). */
  pollMs?: number;
  /** How many outcomes one write carries at most. */
  maxBatch?: number;
}

/** The NOTIFY channel the webhook_deliveries insert trigger speaks on (migration 20261207030000). */
export const DELIVERIES_CHANNEL = 'webhook_deliveries';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Delivers webhook events: the outbox worker of docs/decisions/webhook-deliveries.md.
 *
 * Claims due deliveries with leases (FOR UPDATE SKIP LOCKED, fair across endpoints: the claim
 * offers each endpoint's oldest first, within the room it has left), keeps at most
 * WEBHOOK_CONCURRENCY attempts in flight and WEBHOOK_ENDPOINT_CONCURRENCY per endpoint, and claims
 * again as slots free up. It wakes on a NOTIFY from the insert trigger (a new event's deliveries go
 * out at once) or every pollMs (retries coming due). Outcomes are written in batches, one transaction
 * each, by the lease keeper the usage forwarder uses: while PostgreSQL is away an outcome is kept and
 * written as soon as it answers, until the lease would end (then the delivery is sent again: at
 * least once). Leases are short and renewed, so what a dead instance held is due again within
 * leaseSeconds. stop() finishes the attempts under way (each bounded by WEBHOOK_TIMEOUT), writes
 * their outcomes, and stops claiming.
 */
export function createDeliveryWorker(deps: DeliveryWorkerDeps) {
  const { db, deliveries, logger, settings } = deps;
  const leaseSeconds = deps.leaseSeconds ?? Math.max(30, Math.ceil(settings.timeoutMs / 1000) + 10);
  const pollMs = deps.pollMs ?? 1000;
  const maxBatch = deps.maxBatch ?? 500;
  const workerId = `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const leases = createLeaseKeeper({
    db,
    repo: { extendLeases: (_db, ids, secs) => deliveries.extendLeases(ids, secs, workerId) },
    logger,
    leaseSeconds,
    what: 'webhook delivery',
    givenUp: 'the deliveries will be attempted again (receivers de-duplicate by webhook-id)',
  });

  let stopping = true;
  let loop: Promise<void> | null = null;
  const inFlight = new Set<Promise<void>>();
  const perEndpoint = new Map<string, number>();
  let wakeUp: (() => void) | null = null;
  let woken = false;
  const pending: { d: ReadyDelivery; outcome: AttemptOutcome }[] = [];
  let flushing: Promise<void> | null = null;
  let listener: Client | null = null;
  let listenerRetry: NodeJS.Timeout | null = null;
  let claimFailing = false;

  function wake(): void {
    woken = true;
    wakeUp?.();
  }

  async function waitForWake(ms: number): Promise<void> {
    if (woken || stopping) {
      woken = false;
      return;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    wakeUp = null;
    woken = false;
  }

  /** Writes the outcomes waiting, a batch at a time, one write at a time. */
  function flush(): Promise<void> {
    return (flushing ??= (async () => {
      while (pending.length > 0) {
        const batch = pending.splice(0, maxBatch);
        const ids = batch.map((b) => b.d.id);
        await leases.settle(ids, () =>
          deliveries.record(
            batch.map((b) => b.outcome),
            workerId,
          ),
        );
      }
    })().finally(() => {
      flushing = null;
      // Pushed while the last write was ending: not left behind.
      if (pending.length > 0) void flush();
    }));
  }

  async function attemptOne(d: ReadyDelivery): Promise<void> {
    if (!leases.live(d.id)) return;
    const result = await deliveries.attempt(d);
    pending.push({ d, outcome: deliveries.outcomeOf(d, result) });
    void flush();
  }

  function start(d: ReadyDelivery): void {
    perEndpoint.set(d.endpointId, (perEndpoint.get(d.endpointId) ?? 0) + 1);
    const p: Promise<void> = attemptOne(d)
      .catch((err: unknown) => logger.error({ err, deliveryId: d.id }, 'webhook delivery attempt failed unexpectedly'))
      .finally(() => {
        const n = (perEndpoint.get(d.endpointId) ?? 1) - 1;
        if (n > 0) perEndpoint.set(d.endpointId, n);
        else perEndpoint.delete(d.endpointId);
        inFlight.delete(p);
        wake();
      });
    inFlight.add(p);
  }

  async function run(): Promise<void> {
    while (!stopping) {
      const free = settings.concurrency - inFlight.size;
      if (free <= 0) {
        await waitForWake(pollMs);
        continue;
      }
      // A slot or two free while many attempts run: let a few more finish, claim them together.
      if (free < Math.max(2, settings.concurrency / 10) && inFlight.size > 0) await sleep(10);
      let claimed: ReadyDelivery[];
      const since = Date.now();
      try {
        claimed = await deliveries.claim({
          limit: settings.concurrency - inFlight.size,
          perEndpoint: settings.endpointConcurrency,
          busy: perEndpoint,
          leaseSeconds,
          by: workerId,
        });
        if (claimFailing) logger.info('webhook delivery worker claims again');
        claimFailing = false;
      } catch (err) {
        if (!claimFailing) logger.error({ err }, 'webhook delivery worker could not claim deliveries; retrying');
        claimFailing = true;
        await waitForWake(pollMs);
        continue;
      }
      leases.hold(
        claimed.map((d) => d.id),
        since,
      );
      if (stopping) {
        // Claimed as stop() came: give them back untried.
        const ids = claimed.map((d) => d.id);
        await leases.settle(ids, () => deliveries.release(ids, workerId));
        break;
      }
      for (const d of claimed) start(d);
      if (claimed.length === 0) await waitForWake(pollMs);
    }
  }

  async function listen(url: string, attempt = 0): Promise<void> {
    if (stopping) return;
    const c = new Client({ connectionString: url, application_name: 'billing-service-webhooks' });
    const retry = (err: unknown) => {
      if (stopping || listener !== c) return;
      listener = null;
      logger.warn({ err }, 'webhook deliveries listener lost; polling meanwhile, reconnecting');
      c.end().catch(() => undefined);
      listenerRetry = setTimeout(() => void listen(url, attempt + 1), Math.min(30_000, 500 * 2 ** attempt));
      listenerRetry.unref();
    };
    listener = c;
    c.on('error', retry);
    c.on('end', () => retry(new Error('listener connection ended')));
    c.on('notification', (msg) => {
      if (msg.channel === DELIVERIES_CHANNEL) wake();
    });
    try {
      await c.connect();
      await c.query(`listen ${DELIVERIES_CHANNEL}`);
      attempt = 0;
      wake();
    } catch (err) {
      retry(err);
    }
  }

  return {
    id: workerId,
    leaseSeconds,
    /** Starts delivering; with a database URL, also listens for new deliveries (else polls alone). */
    start(databaseUrl?: string): void {
      if (!stopping) return;
      stopping = false;
      if (databaseUrl) void listen(databaseUrl);
      loop = run().catch((err: unknown) => logger.error({ err }, 'webhook delivery worker stopped on an error'));
    },
    /** Stops claiming, finishes the attempts under way and writes their outcomes. */
    async stop(): Promise<void> {
      if (stopping && !loop) return;
      stopping = true;
      wake();
      if (listenerRetry) clearTimeout(listenerRetry);
      const c = listener;
      listener = null;
      await c?.end().catch(() => undefined);
      await loop;
      loop = null;
      await Promise.allSettled([...inFlight]);
      await flush();
      leases.close();
    },
    /** Attempts in flight now. */
    inFlight: () => inFlight.size,
    /** Deliveries this instance holds a lease on (in an attempt, or its outcome being written). */
    held: () => leases.size(),
    /** Claims at once (tests). */
    wake,
  };
}

export type DeliveryWorker = ReturnType<typeof createDeliveryWorker>;
