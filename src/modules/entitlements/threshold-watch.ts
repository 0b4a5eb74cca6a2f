import { performance } from 'node:perf_hooks';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { EventEmitter, EventInput } from '../events/events-service';
import type { UsageService } from '../usage/usage-service';
import type { Crossing, CrossingsRepository } from './crossings-repository';
import type { Deal, Deals } from './deals';
import { allowances, capPercent, meteredStatus, micros, periodDays, reached } from './entitlement-rules';

export interface ThresholdWatchDeps {
  db: Knex;
  deals: Pick<Deals, 'dealsFor'>;
  usage: Pick<UsageService, 'periodTotals'>;
  crossings: CrossingsRepository;
  events: EventEmitter;
  logger: Logger;
  /** The service clock: periods, override ends and the cache's age are read against it. */
  now?: () => number;
  /** At most one round per this many ms (default 50): marks in between go together. */
  minIntervalMs?: number;
  /** How long a customer's deal is reused (default 30 s). */
  cacheTtlMs?: number;
  /** After a failed round, the next waits this long, doubling up to 30 s (default 1 s). */
  retryMs?: number;
}

interface Cached {
  deal: Deal;
  loadedAt: number;
  /** Crossings of deal.period known to be recorded (metric|allowance|kind|percent): never inserted again. */
  known: Set<string>;
}

/** One metered metric of one customer to check this round. */
interface Item {
  entry: Cached;
  metric: string;
  allowance: number;
}

const MAX_RETRY_MS = 30_000;
const FOREIGN_KEY_VIOLATION = '23503';
const knownKey = (c: Pick<Crossing, 'metric' | 'allowance' | 'kind' | 'percent'>) => `${c.metric}|${c.allowance}|${c.kind}|${c.percent}`;

/**
 * Announces usage crossing a customer's thresholds (usage.threshold_crossed) and the end of an
 * allowance's tolerance (usage.allowance_exhausted), exactly once per threshold, period and
 * allowance, however many instances ingest.
 *
 * The usage write tells it, after its commit, which (customer, metric) got new events (`mark`);
 * rounds (one at a time, at most one per minIntervalMs) take every pair marked since the last, read
 * their periods' usage in one query from the daily totals the write keeps, and insert each crossing
 * reached with ON CONFLICT DO NOTHING, writing the event only for rows this insert made, in the same
 * transaction. The mark follows the commit and the read follows the mark, so whichever instance's
 * write commits last reads a total that includes every earlier write: no crossing is missed, and the
 * key makes it once. Nothing here is on the path of the acknowledgement; a failed round keeps its
 * pairs for the next one. A crash between a commit and its round is caught by the metric's next write.
 */
export function createThresholdWatch(deps: ThresholdWatchDeps) {
  const { db, deals, usage, crossings, events, logger } = deps;
  const now = deps.now ?? Date.now;
  const minIntervalMs = deps.minIntervalMs ?? 50;
  const ttlMs = deps.cacheTtlMs ?? 30_000;
  const retryMs = deps.retryMs ?? 1000;

  /** customer -> metrics marked since the last round. */
  let dirty = new Map<string, Set<string>>();
  /** Customers whose every metered metric is to be checked (their deal changed). */
  let everything = new Set<string>();
  const cache = new Map<string, Cached>();
  let lastSweep = 0;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<Error | null> | null = null;
  let lastStart = -Infinity;
  let failures = 0;
  let stopped = false;

  const pending = () => dirty.size > 0 || everything.size > 0;

  /** Whether a cached deal still holds at `t`: young enough, its period not over, its overrides not ended. */
  function fresh(e: Cached, t: number): boolean {
    if (t - e.loadedAt >= ttlMs || e.deal.period.end.getTime() <= t) return false;
    const ends = e.deal.overridesApply ? e.deal.overrides?.expiresAt : null;
    return !ends || ends.getTime() > t;
  }

  async function dealsOf(ids: readonly string[], t: number): Promise<void> {
    if (t - lastSweep >= ttlMs) {
      lastSweep = t;
      for (const [id, e] of cache) if (t - e.loadedAt >= ttlMs) cache.delete(id);
    }
    const misses = ids.filter((id) => {
      const e = cache.get(id);
      return !e || !fresh(e, t);
    });
    if (misses.length === 0) return;
    const loaded = await deals.dealsFor(misses, t);
    for (const [id, deal] of loaded) {
      const before = cache.get(id);
      const samePeriod = before && before.deal.period.start.getTime() === deal.period.start.getTime();
      cache.set(id, { deal, loadedAt: t, known: samePeriod ? before.known : new Set() });
    }
  }

  function eventFor(c: Crossing, deal: Deal): EventInput {
    const policy = deal.effective.overage[c.metric]!;
    const status = meteredStatus(c.allowance, c.quantity, policy, deal.effective.thresholds);
    const period = { period_start: c.periodStart.toISOString(), period_end: c.periodEnd.toISOString() };
    if (c.kind === 'threshold') {
      return {
        type: 'usage.threshold_crossed',
        customerId: c.customerId,
        data: {
          customer_id: c.customerId,
          metric: c.metric,
          threshold_percent: c.percent,
          allowance: c.allowance,
          quantity: status.used,
          ...period,
          overage: policy,
          state: status.state,
        },
      };
    }
    return {
      type: 'usage.allowance_exhausted',
      customerId: c.customerId,
      data: {
        customer_id: c.customerId,
        metric: c.metric,
        allowance: c.allowance,
        quantity: status.used,
        overage: policy,
        blocks_at: status.blocks_at,
        ...period,
      },
    };
  }

  /** Records one customer's crossings and writes an event for each this insert made, in one transaction. */
  async function announce(found: readonly { crossing: Crossing; deal: Deal }[]): Promise<void> {
    await db.transaction(async (trx) => {
      const inserted = await crossings.insertNew(
        trx,
        found.map((f) => f.crossing),
      );
      if (inserted.length === 0) return;
      const dealOf = new Map(found.map((f) => [f.crossing, f.deal]));
      const ids = await events.emit(
        trx,
        inserted.map((c) => eventFor(c, dealOf.get(c)!)),
      );
      await crossings.setEventIds(
        trx,
        inserted.map((crossing, i) => ({ crossing, eventId: ids[i]! })),
      );
    });
  }

  /**
   * One round over the pairs taken. Throws when the deals or the totals could not be read (every
   * pair is then marked again); a customer whose announcement failed is marked again on its own
   * (one customer's trouble never holds back the others), and the first such error is returned.
   */
  async function check(work: Map<string, Set<string>>, all: Set<string>): Promise<Error | null> {
    const t = now();
    const ids = [...new Set([...work.keys(), ...all])];
    await dealsOf(ids, t);
    const items: Item[] = [];
    for (const id of ids) {
      const entry = cache.get(id)!;
      const allowed = allowances(entry.deal.effective);
      const metrics = all.has(id) ? Object.keys(allowed) : work.get(id)!;
      for (const metric of metrics) if (allowed[metric] !== undefined) items.push({ entry, metric, allowance: allowed[metric] });
    }
    if (items.length === 0) return null;
    const totals = await usage.periodTotals(items.map((i) => ({ customerId: i.entry.deal.customerId, metric: i.metric, ...periodDays(i.entry.deal.period) })));

    /** customer -> the crossings reached and not known to be recorded, lowest first per metric. */
    const found = new Map<string, { crossing: Crossing; entry: Cached }[]>();
    items.forEach((item, i) => {
      const { deal, known } = item.entry;
      const used = micros(totals[i]!);
      const cap = capPercent(deal.effective.overage[item.metric]!);
      const candidates: [Crossing['kind'], number][] = deal.effective.thresholds.map((p): [Crossing['kind'], number] => ['threshold', p]);
      if (cap !== null) candidates.push(['exhausted', cap]);
      for (const [kind, percent] of candidates) {
        if (!reached(used, item.allowance, percent)) continue;
        const crossing: Crossing = {
          customerId: deal.customerId,
          metric: item.metric,
          periodStart: deal.period.start,
          periodEnd: deal.period.end,
          allowance: item.allowance,
          kind,
          percent,
          quantity: totals[i]!,
        };
        if (known.has(knownKey(crossing))) continue;
        const list = found.get(deal.customerId) ?? [];
        list.push({ crossing, entry: item.entry });
        found.set(deal.customerId, list);
      }
    });

    let firstError: Error | null = null;
    for (const [customerId, list] of found) {
      try {
        await announce(list.map((f) => ({ crossing: f.crossing, deal: f.entry.deal })));
        // Committed: recorded now, by this round or by another instance's.
        for (const f of list) f.entry.known.add(knownKey(f.crossing));
      } catch (err) {
        if ((err as { code?: string }).code === FOREIGN_KEY_VIOLATION) {
          logger.warn({ customer_id: customerId }, 'usage threshold check: the customer no longer exists; nothing to announce');
          continue;
        }
        for (const m of work.get(customerId) ?? []) add(customerId, m);
        if (all.has(customerId)) everything.add(customerId);
        logger.error({ err, customer_id: customerId }, 'usage threshold announcement failed; the customer is checked again in the next round');
        firstError ??= err instanceof Error ? err : new Error(String(err));
      }
    }
    return firstError;
  }

  async function round(): Promise<Error | null> {
    const work = dirty;
    const all = everything;
    dirty = new Map();
    everything = new Set();
    let err: Error | null;
    try {
      err = await check(work, all);
    } catch (e) {
      for (const [id, metrics] of work) for (const m of metrics) add(id, m);
      for (const id of all) everything.add(id);
      logger.error(
        { err: e, customers: new Set([...work.keys(), ...all]).size },
        'usage threshold check failed; its customers are checked again in the next round',
      );
      err = e instanceof Error ? e : new Error(String(e));
    }
    failures = err ? failures + 1 : 0;
    return err;
  }

  function runRound(): Promise<Error | null> {
    if (timer) {
      clearTimeout(timer);
      timer = null;
    }
    lastStart = performance.now();
    const r = round().finally(() => {
      running = null;
      schedule();
    });
    running = r;
    return r;
  }

  function schedule(): void {
    if (stopped || timer || running || !pending()) return;
    const gap = failures ? Math.min(MAX_RETRY_MS, retryMs * 2 ** (failures - 1)) : minIntervalMs;
    timer = setTimeout(
      () => {
        timer = null;
        void runRound();
      },
      Math.max(0, lastStart + gap - performance.now()),
    );
    // A clean stop checks what is left (stop()); nothing here should keep a process alive.
    timer.unref();
  }

  function add(customerId: string, metric: string): void {
    let metrics = dirty.get(customerId);
    if (!metrics) dirty.set(customerId, (metrics = new Set()));
    metrics.add(metric);
  }

  /** Finishes the round under way, then checks what is still marked (one round, whatever its outcome). */
  async function drained(): Promise<void> {
    while (running) await running;
    if (pending()) await runRound();
  }

  return {
    /** (customer, metric) pairs a write just committed new events of. Never throws, never waits. */
    mark(pairs: readonly { customerId: string; metric: string }[]): void {
      for (const p of pairs) add(p.customerId, p.metric);
      schedule();
    },

    /** The customer's deal changed (overrides, plan, subscription): forget it and check every metered metric now. */
    customerChanged(customerId: string): void {
      cache.delete(customerId);
      everything.add(customerId);
      schedule();
    },

    /**
     * The customer's deal as this watch checks against it: from its cache (at most cacheTtlMs old,
     * never past its period or its overrides' end), read when missing. What the customer's own
     * GET /api/usage shows, so a read costs no deal lookup.
     */
    async dealOf(customerId: string): Promise<Deal> {
      await dealsOf([customerId], now());
      return cache.get(customerId)!.deal;
    },

    /** Runs a round now (after the one under way); rejects when it failed. For tests. */
    async checkNow(): Promise<void> {
      while (running) await running;
      const err = await runRound();
      if (err) throw err;
    },

    drained,

    /** At shutdown, after the usage writes drained: no more rounds, but what is marked is checked once. */
    async stop(): Promise<void> {
      stopped = true;
      if (timer) {
        clearTimeout(timer);
        timer = null;
      }
      await drained();
    },
  };
}

export type ThresholdWatch = ReturnType<typeof createThresholdWatch>;
