import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { Config } from '../../config';
import type { StripePort } from '../../stripe/stripe-port';
import { StripeCallError } from '../../stripe/stripe-port';
import type { ClaimedEvent, ForwarderRepository } from './forwarder-repository';

export interface ForwarderDeps {
  db: Knex;
  repo: ForwarderRepository;
  stripe: StripePort;
  logger: Logger;
  settings: Config['forwarder'];
  meterEvents: Config['usage']['meterEvents'];
  random?: () => number;
  /** Observes each batch's outcome (metrics). */
  onRun?: (summary: RunSummary) => void;
}

export interface RunSummary {
  claimed: number;
  sent: number;
  retried: number;
  failed: number;
  local: number;
  released: number;
}

/**
 * Sends pending usage events to Stripe Billing meter events. Claims batches by lease (any
 * number of instances may run it), sends each with our event id as Stripe's identifier (so a
 * resend after a crash counts once), retries with capped exponential backoff and jitter, and
 * parks an event as failed after FORWARDER_MAX_ATTEMPTS or on a permanent 4xx.
 */
export function createUsageForwarder(deps: ForwarderDeps) {
  const { db, repo, stripe, logger, settings, meterEvents } = deps;
  const random = deps.random ?? Math.random;
  let stopping = false;
  let timer: NodeJS.Timeout | null = null;
  let current: Promise<RunSummary> | null = null;

  /** Equal jitter: half the capped exponential delay, plus a random part of the other half. */
  function backoffMs(attempts: number): number {
    const cap = Math.min(settings.backoffMaxMs, settings.backoffBaseMs * 2 ** Math.max(0, attempts - 1));
    return Math.round(cap / 2 + random() * (cap / 2));
  }

  async function attempt(e: ClaimedEvent, s: RunSummary, sentIds: string[]): Promise<void> {
    try {
      await stripe.sendMeterEvent({
        eventName: meterEvents[e.metric] ?? e.metric,
        stripeCustomerId: e.stripeCustomerId!,
        value: e.quantity,
        identifier: e.id,
        occurredAt: e.occurredAt,
      });
      sentIds.push(e.id);
      s.sent++;
    } catch (err) {
      const failure = err instanceof StripeCallError ? err : new StripeCallError(String(err), true);
      if (failure.retryable && e.attempts < settings.maxAttempts) {
        const delay = backoffMs(e.attempts);
        await repo.scheduleRetry(db, e.id, delay, failure.message);
        s.retried++;
        logger.warn({ eventId: e.id, attempts: e.attempts, retryInMs: delay, error: failure.message }, 'usage event not forwarded; will retry');
      } else {
        await repo.markFailed(db, e.id, failure.message);
        s.failed++;
        logger.error({ eventId: e.id, attempts: e.attempts, error: failure.message }, 'usage event failed permanently; an admin can retry it');
      }
    }
  }

  async function runOnce(): Promise<RunSummary> {
    const s: RunSummary = { claimed: 0, sent: 0, retried: 0, failed: 0, local: 0, released: 0 };
    if (stopping || !stripe.enabled) return s;
    const claimed = await repo.claim(db, settings.batchSize, settings.leaseSeconds);
    s.claimed = claimed.length;
    const orphans = claimed.filter((e) => !e.stripeCustomerId).map((e) => e.id);
    await repo.markLocal(db, orphans, 'customer has no Stripe customer');
    s.local = orphans.length;

    const queue = claimed.filter((e) => e.stripeCustomerId);
    const sentIds: string[] = [];
    const unattempted: string[] = [];
    const worker = async () => {
      for (let e = queue.shift(); e; e = queue.shift()) {
        if (stopping) unattempted.push(e.id);
        else await attempt(e, s, sentIds);
      }
    };
    await Promise.all(Array.from({ length: Math.min(settings.concurrency, queue.length) }, worker));
    await repo.markSent(db, sentIds);
    await repo.release(db, unattempted);
    s.released = unattempted.length;
    if (s.claimed > 0) logger.info({ ...s }, 'usage forwarding batch');
    deps.onRun?.(s);
    return s;
  }

  function loop(): void {
    if (stopping) return;
    current = runOnce()
      .catch((err: unknown) => {
        logger.error({ err }, 'usage forwarder run failed; retrying later');
        return { claimed: 0 } as RunSummary;
      })
      .finally(() => {
        current = null;
      });
    void current.then((s) => {
      if (stopping) return;
      // A full batch means more is waiting: go on at once; otherwise poll.
      timer = setTimeout(loop, s.claimed >= settings.batchSize ? 0 : settings.intervalMs);
      timer.unref();
    });
  }

  return {
    runOnce,
    backoffMs,
    start(): void {
      if (!stripe.enabled || !settings.enabled) return;
      stopping = false;
      loop();
    },
    /** Finishes the sends under way, gives back the claimed events not yet attempted. */
    async stop(): Promise<void> {
      stopping = true;
      if (timer) clearTimeout(timer);
      await current;
    },
  };
}

export type UsageForwarder = ReturnType<typeof createUsageForwarder>;
