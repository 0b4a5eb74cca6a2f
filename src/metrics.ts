import type { Knex } from 'knex';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The service's Prometheus metrics, in a registry of its own (one per app, so tests and several
 * apps in one process never collide). Gauges that need the database are read at scrape time.
 */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  return {
    registry,
    httpDuration: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request duration by method, route template and status',
      labelNames: ['method', 'route', 'status'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    authFailures: new Counter({
      name: 'auth_failures_total',
      help: 'Refused authentications by kind (customer_key, admin_token, console_session) and reason',
      labelNames: ['kind', 'reason'] as const,
      registers: [registry],
    }),
    keyVerificationsBusy: new Counter({
      name: 'key_verifications_busy_total',
      help: "Requests answered 503 because every bcrypt slot (AUTH_MAX_CONCURRENT_VERIFICATIONS), or a flooded key's lane, was taken",
      registers: [registry],
    }),
    redisFallbackActive: new Gauge({
      name: 'redis_fallback_active',
      help: '1 while rate limits are counted in this instance (Redis failing or slow, see REDIS_COMMAND_TIMEOUT), 0 while shared through Redis',
      registers: [registry],
    }),
    clientErrors: new Counter({
      name: 'http_client_errors_total',
      help: "Requests node's HTTP parser refused before the app saw them, by the parser's code (HPE_INVALID_HEADER_TOKEN, HPE_HEADER_OVERFLOW, ...)",
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: 'rate_limited_total',
      help: 'Requests refused by a rate limiter',
      labelNames: ['limiter'] as const,
      registers: [registry],
    }),
    usageAccepted: new Counter({
      name: 'usage_events_accepted_total',
      help: 'Usage events stored (replays not counted), by how they came (single, batch, bundle)',
      labelNames: ['mode'] as const,
      registers: [registry],
    }),
    forwarderOutcomes: new Counter({
      name: 'usage_forwarder_events_total',
      help: 'Usage events handled by the forwarder, by outcome (sent, retried, failed, local)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    forwarderCalls: new Counter({
      name: 'usage_forwarder_stripe_calls_total',
      help: 'Stripe calls made by the forwarder (a meter event stream call carries up to 100 events), by outcome (sent, retried, failed)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    trueUps: new Counter({
      name: 'usage_true_ups_total',
      help: 'Late usage true-ups handled by the true-up worker, by outcome (sent: a Stripe invoice item was made; retried; failed: parked for an admin)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    usagePartitionsRetained: new Gauge({
      name: 'usage_partitions_retained',
      help: 'Months of raw usage events past USAGE_RETENTION_MONTHS that the last retention run kept, by reason (unforwarded, open_period, no_archive_dir, archive_failed, restored)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    webhookEvents: new Counter({
      name: 'stripe_webhook_events_total',
      help: 'Stripe webhook deliveries by event type and outcome (processed, duplicate, ignored, failed, invalid_signature)',
      labelNames: ['type', 'outcome'] as const,
      registers: [registry],
    }),

    webhookDeliveries: new Counter({
      name: 'webhook_deliveries_total',
      help: 'Webhook delivery attempts to endpoints, by outcome (delivered: a 2xx in time; failed: anything else, retried on schedule)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    webhookDeliveryDuration: new Histogram({
      name: 'webhook_delivery_duration_seconds',
      help: 'How long webhook delivery attempts took (connect, send, the answer), every outcome',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),

    licensesIssued: new Counter({
      name: 'licenses_issued_total',
      help: 'Licenses signed, by the status they carry (active, trialing, grace, expired)',
      labelNames: ['status'] as const,
      registers: [registry],
    }),

    usagePartitionRuns: new Counter({
      name: 'usage_partition_maintenance_runs_total',
      help: 'Usage partition maintenance runs, by outcome (done; skipped: another instance held the lock; failed: tried again next round)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    usagePartitionDuration: new Histogram({
      name: 'usage_partition_maintenance_duration_seconds',
      help: 'How long usage partition maintenance runs took (done and failed)',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    usagePartitionsCreated: new Counter({
      name: 'usage_partitions_created_total',
      help: 'Monthly partitions of usage_events created by this instance',
      registers: [registry],
    }),
    usageMonthsPacked: new Counter({
      name: 'usage_months_packed_total',
      help: 'Settled months of usage_events packed into usage_event_packs by this instance (a month packed again after late events counts again)',
      registers: [registry],
    }),
    usageMonthsPackWaiting: new Gauge({
      name: 'usage_months_pack_waiting',
      help: 'Settled months left as rows by the last partition maintenance round because an event of theirs still waits for Stripe',
      registers: [registry],
    }),
    usagePartitionGauges: usagePartitionGauges(registry),

    /** License activations holding a seat, read from the database when Prometheus scrapes. */
    watchActivations(count: () => Promise<number>) {
      new Gauge({
        name: 'license_activations_active',
        help: 'License activations (instances) holding a seat, every customer',
        registers: [registry],
        async collect() {
          try {
            this.set(await count());
          } catch {
            // The database is away: the scrape still answers, without this value.
          }
        },
      });
    },

    /** The webhook deliveries' backlog and disabled endpoints, read from the database when Prometheus scrapes (one query for both). */
    watchWebhooks(backlog: () => Promise<{ oldestPendingSeconds: number; disabledEndpoints: number }>) {
      let read: { at: number; value: ReturnType<typeof backlog> } | null = null;
      const latest = () => {
        if (!read || Date.now() - read.at > 1000) read = { at: Date.now(), value: backlog() };
        return read.value;
      };
      new Gauge({
        name: 'webhook_oldest_pending_seconds',
        help: 'Age of the oldest webhook delivery not yet delivered to an enabled endpoint (since its event was written), in seconds; 0 when none waits',
        registers: [registry],
        async collect() {
          try {
            this.set((await latest()).oldestPendingSeconds);
          } catch {
            // The database is away: the scrape still answers, without this value.
          }
        },
      });
      new Gauge({
        name: 'webhook_endpoints_disabled',
        help: 'Webhook endpoints disabled (by an admin, or for failing WEBHOOK_DISABLE_AFTER without a success)',
        registers: [registry],
        async collect() {
          try {
            this.set((await latest()).disabledEndpoints);
          } catch {
            // As above.
          }
        },
      });
    },

    /** Gauges read from the database and the pool when Prometheus scrapes. */
    watch(db: Knex, backlog: () => Promise<{ pending: number; due: number; failed: number; oldestPendingSeconds: number }>) {
      // Both backlog gauges come from one query per scrape.
      let read: { at: number; value: ReturnType<typeof backlog> } | null = null;
      const latest = () => {
        if (!read || Date.now() - read.at > 1000) read = { at: Date.now(), value: backlog() };
        return read.value;
      };
      const pool = (db.client as { pool?: { numUsed(): number; numFree(): number; numPendingAcquires(): number } }).pool;
      new Gauge({
        name: 'db_pool_connections',
        help: 'Database pool connections by state (used, free, waiting)',
        labelNames: ['state'] as const,
        registers: [registry],
        collect() {
          this.set({ state: 'used' }, pool?.numUsed() ?? 0);
          this.set({ state: 'free' }, pool?.numFree() ?? 0);
          this.set({ state: 'waiting' }, pool?.numPendingAcquires() ?? 0);
        },
      });
      new Gauge({
        name: 'usage_forwarder_backlog',
        help: 'Usage events waiting for Stripe (pending, due now) and parked as failed',
        labelNames: ['state'] as const,
        registers: [registry],
        async collect() {
          try {
            const b = await latest();
            this.set({ state: 'pending' }, b.pending);
            this.set({ state: 'due' }, b.due);
            this.set({ state: 'failed' }, b.failed);
          } catch {
            // The database is away: the scrape still answers, without these values.
          }
        },
      });
      new Gauge({
        name: 'usage_forwarder_oldest_pending_seconds',
        help: 'Age of the oldest usage event not yet accepted by Stripe (since it was received), in seconds; 0 when none waits',
        registers: [registry],
        async collect() {
          try {
            this.set((await latest()).oldestPendingSeconds);
          } catch {
            // As above.
          }
        },
      });
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * Rows in the default partition of usage_events and months of partitions ahead, read from the database
 * when Prometheus scrapes once watch() names the reader (registered from the start, so the names are fixed).
 */
function usagePartitionGauges(registry: Registry) {
  let read: (() => Promise<{ defaultRows: number; monthsAhead: number }>) | null = null;
  let last: { at: number; value: Promise<{ defaultRows: number; monthsAhead: number }> } | null = null;
  const latest = () => {
    if (!read) return null;
    if (!last || Date.now() - last.at > 1000) last = { at: Date.now(), value: read() };
    return last.value;
  };
  new Gauge({
    name: 'usage_default_partition_rows',
    help: 'Usage events in the default partition of usage_events (strays: their month has no partition); maintenance moves them hourly',
    registers: [registry],
    async collect() {
      try {
        const v = latest();
        if (v) this.set((await v).defaultRows);
      } catch {
        // The database is away: the scrape still answers, without this value.
      }
    },
  });
  new Gauge({
    name: 'usage_partitions_months_ahead',
    help: 'Months after the current UTC month covered by partitions of usage_events without a gap (-1: not even the current month)',
    registers: [registry],
    async collect() {
      try {
        const v = latest();
        if (v) this.set((await v).monthsAhead);
      } catch {
        // As above.
      }
    },
  });
  return {
    watch(reader: () => Promise<{ defaultRows: number; monthsAhead: number }>) {
      read = reader;
    },
  };
}
