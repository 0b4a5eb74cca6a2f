import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { Config } from '../../config';
import type { MeterEventInput, StripePort } from '../../stripe/stripe-port';
import { METER_STREAM_MAX_EVENTS, StripeCallError } from '../../stripe/stripe-port';
import type { ForwardingFailures } from './forwarding-failures';
import { createLeaseKeeper } from './forwarding-leases';
import type { ClaimedEvent, ForwardingRepository } from './forwarding-repository';

export interface ForwardingWorkerDeps {
  db: Knex;
  repo: ForwardingRepository;
  stripe: StripePort;
  /** usage.forwarding_failed events, written in the transaction that parks events as failed. */
  failures: ForwardingFailures;
  logger: Logger;
  settings: Config['forwarder'];
  meterEvents: Config['usage']['meterEvents'];
  random?: () => number;
  /** Observes each run's outcome (metrics). */
  onRun?: (summary: RunSummary) => void;
  /** Observes each Stripe call (metrics): how it ended and how many events it carried. */
  onCall?: (outcome: 'sent' | 'retried' | 'failed', events: number) => void;
}

export interface RunSummary {
  claimed: number;
  sent: number;
  retried: number;
  failed: number;
  local: number;
  released: number;
  /** Stripe calls made (one per event in v1, one per up to 100 events on the stream). */
  calls: number;
}

const emptySummary = (): RunSummary => ({ claimed: 0, sent: 0, retried: 0, failed: 0, local: 0, released: 0, calls: 0 });

/**
 * Sends pending usage events to Stripe. Leases of FORWARDER_BATCH_SIZE events are claimed with
 * FOR UPDATE SKIP LOCKED (any number of instances may run it) into one queue; FORWARDER_CONCURRENCY
 * workers take calls' worth from it (100 events on the meter event stream, one in v1 mode) and mark
 * each call's events in one statement when it ends. While the workers send, the next lease is
 * claimed, so Stripe's latency, not the database, sets the pace. Our event id is each event's
 * identifier, so a resend (a lost answer, a crash before marking, an expired lease) counts once.
 * Failed calls are retried with capped exponential backoff and jitter; an event is parked as failed
 * after FORWARDER_MAX_ATTEMPTS or on a permanent 4xx.
 *
 * Leases (forwarding-leases.ts) are short and renewed while the events are held, so what a dead
 * instance held is due again within FORWARDER_LEASE_SECONDS, and an outcome PostgreSQL could not
 * take is written as soon as it answers, not when a long lease ends.
 */
export function createForwardingWorker(deps: ForwardingWorkerDeps) {
  const { db, repo, stripe, failures, logger, settings, meterEvents } = deps;
  const random = deps.random ?? Math.random;
  const perCall = settings.mode === 'stream' ? METER_STREAM_MAX_EVENTS : 1;
  let stopping = false;
  let timer: NodeJS.Timeout | null = null;
  let current: Promise<RunSummary> | null = null;
  const leases = createLeaseKeeper({ db, repo, logger, leaseSeconds: settings.leaseSeconds });
  const none = { retried: 0, failed: 0 };

  /** Equal jitter: half the capped exponential delay, plus a random part of the other half. */
  function backoffMs(attempts: number): number {
    const cap = Math.min(settings.backoffMaxMs, settings.backoffBaseMs * 2 ** Math.max(0, attempts - 1));
    return Math.round(cap / 2 + random() * (cap / 2));
  }

  const toInput = (e: ClaimedEvent): MeterEventInput => ({
    eventName: meterEvents[e.metric] ?? e.metric,
    stripeCustomerId: e.stripeCustomerId!,
    value: e.quantity,
    identifier: e.id,
    occurredAt: e.occurredAt,
  });
  const asCallError = (err: unknown) => (err instanceof StripeCallError ? err : new StripeCallError(String(err), true));

  /** v1: one meter event per call, its own backoff. */
  async function sendOne(e: ClaimedEvent, s: RunSummary): Promise<void> {
    s.calls++;
    try {
      await stripe.sendMeterEvent(toInput(e));
    } catch (err) {
      const failure = asCallError(err);
      if (failure.retryable && e.attempts < settings.maxAttempts) {
        const delay = backoffMs(e.attempts);
        await leases.settle([e.id], () => repo.scheduleRetry(db, e.id, delay, failure.message));
        s.retried++;
        deps.onCall?.('retried', 1);
        logger.warn({ eventId: e.id, attempts: e.attempts, retryInMs: delay, error: failure.message }, 'usage event not forwarded; will retry');
      } else {
        await leases.settle([e.id], () =>
          db.transaction(async (trx) => {
            if (await repo.markFailed(trx, e.id, failure.message))
              await failures.record(trx, [e.id], { source: 'forwarder', http_status: failure.status ?? null });
          }),
        );
        s.failed++;
        deps.onCall?.('failed', 1);
        logger.error({ eventId: e.id, attempts: e.attempts, error: failure.message }, 'usage event failed permanently; an admin can retry it');
      }
      return;
    }
    // One call per event: its idempotency key (meter-event-<id>) names the call; no submission id.
    await leases.settle([e.id], () => repo.markSent(db, [e.id]));
    s.sent++;
    deps.onCall?.('sent', 1);
  }

  /** Stream: up to 100 events in one call; its events are marked together, by our submission id. */
  async function sendMany(events: ClaimedEvent[], s: RunSummary): Promise<void> {
    const submissionId = randomUUID();
    const ids = events.map((e) => e.id);
    s.calls++;
    let requestId: string | null;
    try {
      ({ requestId } = await stripe.sendMeterEventStream({ submissionId, events: events.map(toInput) }));
    } catch (err) {
      const failure = asCallError(err);
      const log = { submissionId, requestId: failure.requestId ?? null, events: ids.length, status: failure.status, error: failure.message };
      if (failure.retryable) {
        const r =
          (await leases.settle(ids, () =>
            db.transaction(async (trx) => {
              const outcome = await repo.retryOrFail(trx, ids, submissionId, failure.message, settings);
              await failures.record(trx, outcome.failedIds, { source: 'forwarder', http_status: failure.status ?? null, stripe_submission_id: submissionId });
              return { retried: outcome.retried, failed: outcome.failed };
            }),
          )) ?? none;
        s.retried += r.retried;
        s.failed += r.failed;
        deps.onCall?.('retried', ids.length);
        logger.warn({ ...log, ...r }, 'usage submission not accepted by Stripe; will retry');
      } else {
        // (Never `s.x += await …`: s.x would be read before the await, and other workers' counts lost.)
        const failed =
          (await leases.settle(ids, () =>
            db.transaction(async (trx) => {
              const failedIds = await repo.failMany(trx, ids, submissionId, failure.message);
              await failures.record(trx, failedIds, { source: 'forwarder', http_status: failure.status ?? null, stripe_submission_id: submissionId });
              return failedIds.length;
            }),
          )) ?? 0;
        s.failed += failed;
        deps.onCall?.('failed', ids.length);
        logger.error(log, 'usage submission refused by Stripe; its events are failed, an admin can retry them');
      }
      return;
    }
    const sent = (await leases.settle(ids, () => repo.markSentBy(db, ids, submissionId))) ?? 0;
    s.sent += sent;
    deps.onCall?.('sent', ids.length);
    logger.info({ submissionId, requestId, events: ids.length }, 'usage submission accepted by Stripe');
  }

  /**
   * Claims and sends. `continuous`: claims again while leases come back full (the background loop);
   * otherwise one lease (runOnce). An outcome is written again while PostgreSQL is away, until the
   * lease would end; events still queued when their lease ended are left for the next claim.
   */
  async function pump(continuous: boolean): Promise<RunSummary> {
    const s = emptySummary();
    if (stopping || !stripe.enabled) return s;
    const queue: ClaimedEvent[] = [];
    let exhausted = false;
    let refilling: Promise<void> | null = null;
    const refill = () =>
      (refilling ??= (async () => {
        const since = Date.now();
        const claimed = await repo.claim(db, settings.batchSize, settings.leaseSeconds);
        leases.hold(
          claimed.map((e) => e.id),
          since,
        );
        s.claimed += claimed.length;
        if (!continuous || claimed.length < settings.batchSize) exhausted = true;
        const orphans = claimed.filter((e) => !e.stripeCustomerId).map((e) => e.id);
        if ((await leases.settle(orphans, () => repo.markLocal(db, orphans))) !== null) s.local += orphans.length;
        queue.push(...claimed.filter((e) => e.stripeCustomerId));
      })().finally(() => {
        refilling = null;
      }));
    const take = async (): Promise<ClaimedEvent[] | null> => {
      for (;;) {
        if (stopping) return null;
        if (queue.length > 0) {
          const chunk = queue.splice(0, perCall).filter((e) => leases.live(e.id));
          // Claim the next lease while this one is being sent.
          if (!exhausted && !refilling && queue.length < perCall * settings.concurrency) {
            refill().catch((err: unknown) => logger.error({ err }, 'usage forwarder could not claim events; retrying'));
          }
          if (chunk.length > 0) return chunk;
          continue;
        }
        if (exhausted) return null;
        await refill();
      }
    };
    const worker = async () => {
      for (let chunk = await take(); chunk; chunk = await take()) {
        if (perCall === 1) await sendOne(chunk[0]!, s);
        else await sendMany(chunk, s);
      }
    };
    const ended = await Promise.allSettled(Array.from({ length: settings.concurrency }, worker));
    await (refilling as Promise<void> | null)?.catch(() => undefined);
    // Stopping: what was claimed but not attempted is due again at once, the attempt not counted.
    const unattempted = queue
      .splice(0)
      .filter((e) => leases.live(e.id))
      .map((e) => e.id);
    if ((await leases.settle(unattempted, () => repo.release(db, unattempted))) !== null) s.released = unattempted.length;
    if (s.claimed > 0) logger.info({ ...s }, 'usage forwarding run');
    deps.onRun?.(s);
    const failed = ended.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    return s;
  }

  /** When the outbox was last cleared of rows Stripe took long ago (at most once a minute, a bounded batch). */
  let purgedAt = 0;
  async function purge(): Promise<void> {
    if (Date.now() - purgedAt < 60_000) return;
    purgedAt = Date.now();
    const gone = await repo.purgeSent(db, 10_000);
    if (gone > 0) logger.debug({ gone }, 'usage outbox: rows of events sent long ago removed');
  }

  function loop(): void {
    if (stopping) return;
    current = pump(true)
      .then(async (s) => {
        await purge();
        return s;
      })
      .catch((err: unknown) => {
        logger.error({ err }, 'usage forwarder run failed; retrying later');
        return emptySummary();
      })
      .finally(() => {
        current = null;
      });
    void current.then(() => {
      if (stopping) return;
      // pump(true) returns once a lease comes back short (or on an error): poll again later.
      timer = setTimeout(loop, settings.intervalMs);
      timer.unref();
    });
  }

  return {
    runOnce: () => pump(false),
    backoffMs,
    start(): void {
      if (!stripe.enabled || !settings.enabled) return;
      stopping = false;
      loop();
    },
    /** Finishes the calls under way (their outcomes written), gives back the claimed events not yet attempted. */
    async stop(): Promise<void> {
      stopping = true;
      if (timer) clearTimeout(timer);
      await current;
      leases.close();
    },
    /** Events this instance holds a lease on (claimed, in a call, or their outcome being written). */
    held: () => leases.size(),
  };
}

export type ForwardingWorker = ReturnType<typeof createForwardingWorker>;
