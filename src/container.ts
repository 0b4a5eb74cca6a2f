import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { Config } from './config';
import { createAdminTokenVerifier } from './middleware/admin-auth';
import { consoleCookieName, createConsoleSessions } from './modules/console/console-sessions';
import { createApiKeysRepository } from './modules/api-keys/api-keys-repository';
import { createApiKeysService } from './modules/api-keys/api-keys-service';
import { createKeyInvalidation } from './modules/api-keys/key-invalidation';
import { createKeyVerifier } from './modules/api-keys/key-verifier';
import { createLastUsedTracker } from './modules/api-keys/last-used-tracker';
import { VerificationCache } from './modules/api-keys/verification-cache';
import { createAuditRepository } from './modules/audit/audit-repository';
import { createAuditService } from './modules/audit/audit-service';
import { createCustomerLookup } from './modules/customers/customer-lookup';
import { createCustomersRepository } from './modules/customers/customers-repository';
import { createCustomersService } from './modules/customers/customers-service';
import { createForwardingFailures } from './modules/usage/forwarding-failures';
import { createForwardingRepository } from './modules/usage/forwarding-repository';
import { createForwardingService } from './modules/usage/forwarding-service';
import { createForwardingWorker } from './modules/usage/forwarding-worker';
import { createUsageRepository } from './modules/usage/usage-repository';
import { createUsageService } from './modules/usage/usage-service';
import { createPlansRepository } from './modules/plans/plans-repository';
import { createPlansService } from './modules/plans/plans-service';
import { createDeals } from './modules/entitlements/deals';
import { createTrueUpsRepository } from './modules/true-ups/true-ups-repository';
import { createTrueUpsService } from './modules/true-ups/true-ups-service';
import { createTrueUpWorker } from './modules/true-ups/true-up-worker';
import { createOverridesRepository } from './modules/entitlements/overrides-repository';
import { createEntitlementsService } from './modules/entitlements/entitlements-service';
import { createOverridesExpiry, createOverridesExpiryJob } from './modules/entitlements/overrides-expiry';
import { createCrossingsRepository } from './modules/entitlements/crossings-repository';
import { createThresholdWatch, type ThresholdWatch } from './modules/entitlements/threshold-watch';
import { createSubscriptionsRepository } from './modules/subscriptions/subscriptions-repository';
import { createSubscriptionsService } from './modules/subscriptions/subscriptions-service';
import { createInvoicesRepository } from './modules/invoices/invoices-repository';
import { createInvoicesService } from './modules/invoices/invoices-service';
import { createStripeEventsRepository } from './modules/stripe-webhooks/stripe-events-repository';
import { createStripeWebhooksService } from './modules/stripe-webhooks/stripe-webhooks-service';
import { createStripeClient } from './stripe/stripe-client';
import type { StripePort } from './stripe/stripe-port';
import { createLimiters, type LimiterName, type RedisCommander } from './middleware/rate-limits';
import { createMetrics } from './metrics';
import { createReadinessCheck } from './modules/health/readiness-check';
import { createActivationsRepository } from './modules/licenses/activations-repository';
import { createActivationSweeper } from './modules/licenses/activation-sweeper';
import { createLicenseSigner, keySetSourceFor, signingKeysFor } from './modules/licenses/license-signer';
import { createLicensesService } from './modules/licenses/licenses-service';
import { createLicenseNotices, createLicenseNoticesJob } from './modules/licenses/license-notices';
import { createLicenseNoticesRepository } from './modules/licenses/license-notices-repository';
import { createEventsRepository } from './modules/events/events-repository';
import { createEventsService } from './modules/events/events-service';
import { createEventRetention } from './modules/events/events-retention';
import { createSecretBox, webhookSecretsKeysFor } from './modules/webhooks/secret-box';
import { createWebhookEndpointsRepository } from './modules/webhooks/webhook-endpoints-repository';
import { createWebhookEndpointsService } from './modules/webhooks/webhook-endpoints-service';
import { createDeliveryRepository } from './modules/webhooks/delivery-repository';
import { createDeliveryService } from './modules/webhooks/delivery-service';
import { createDeliveryWorker } from './modules/webhooks/delivery-worker';
import { createBillingPortalService } from './modules/billing-portal/billing-portal-service';
import { createUpcomingInvoices } from './modules/invoices/upcoming-invoice';
import { createUsageBundlesRepository } from './modules/usage-bundles/usage-bundles-repository';
import { createUsageBundlesService } from './modules/usage-bundles/usage-bundles-service';
import { createUsagePartitionsJob } from './modules/usage-partitions/partitions-job';
import { createUsageRetentionRepository } from './modules/usage-retention/usage-retention-repository';
import { createUsageRetentionJob, createUsageRetentionService } from './modules/usage-retention/usage-retention-service';

export interface ContainerOptions {
  config: Config;
  db: Knex;
  logger: Logger;
  now?: () => number;
  onBcrypt?: () => void;
  /** Defaults to the real stripe-node client (or the disabled port when STRIPE_SECRET_KEY is unset). */
  stripe?: StripePort;
  /** Shared rate-limit counters; null: each instance counts in memory. */
  redis?: RedisCommander | null;
  onLimited?: (name: LimiterName) => void;
  /** The settings the configuration was read from (process.env after .env): the preflight judges them. */
  env?: NodeJS.ProcessEnv;
}

/** Builds every service from its dependencies. server.ts and the tests both call this. */
export function buildContainer({
  config,
  db,
  logger,
  now,
  onBcrypt,
  stripe = createStripeClient(config),
  redis = null,
  onLimited,
  env = process.env,
}: ContainerOptions) {
  const metrics = createMetrics();
  const auditRepo = createAuditRepository();
  const keysRepo = createApiKeysRepository();
  const customersRepo = createCustomersRepository();
  // The customers service issues keys through the API-keys service, which reads customers through
  // this lookup (not the customers service): no cycle. Everyone else uses the customers service.
  const customerLookup = createCustomerLookup({ repo: customersRepo });

  const audit = createAuditService({ db, repo: auditRepo, logger });
  // Every business change records its events through this, in its own transaction (docs/WEBHOOKS.md).
  const events = createEventsService({ db, repo: createEventsRepository(), now, retentionDays: config.events.retentionDays });
  const eventRetention = createEventRetention({ events, logger: logger.child({ component: 'event-retention' }), intervalMs: 600_000 });
  const secretBox = createSecretBox(webhookSecretsKeysFor(config, logger));
  const webhookEndpointsRepo = createWebhookEndpointsRepository();
  const webhookEndpoints = createWebhookEndpointsService({
    db,
    repo: webhookEndpointsRepo,
    audit,
    secretBox,
    policy: { allowHttp: config.webhooks.allowHttp, allowPrivate: config.webhooks.allowPrivate },
    now,
  });
  const adminTokens = createAdminTokenVerifier(config.adminTokens);
  const metricsTokens = createAdminTokenVerifier(config.metricsToken ? [config.metricsToken] : [], 'metrics');
  // Replaced on SIGHUP when it comes from STRIPE_WEBHOOK_SECRET_FILE (see secrets-reload.ts).
  let webhookSecret = config.stripe.webhookSecret;
  const limiters = createLimiters({
    config,
    metricsTokens,
    adminTokens,
    consoleCookie: config.console.enabled ? consoleCookieName(config.console.secureCookie) : null,
    // Read at request time: the verifier is built below, with the limiters' failure guard.
    rememberedCustomer: (presented) => verifier.rememberedCustomer(presented),
    redis,
    logger,
    onLimited: (name) => {
      metrics.rateLimited.inc({ limiter: name });
      onLimited?.(name);
    },
    onRedisFallback: (active) => metrics.redisFallbackActive.set(active ? 1 : 0),
  });
  const consoleSessions = config.console.enabled
    ? createConsoleSessions({
        db,
        audit,
        tokens: adminTokens,
        guard: limiters.authFailures,
        idleMs: config.console.idleMs,
        maxMs: config.console.maxMs,
        secure: config.console.secureCookie,
        now: now ?? Date.now,
        onFailure: (reason) => metrics.authFailures.inc({ kind: 'console_session', reason }),
      })
    : null;
  const cache = new VerificationCache(config.apiKeyCacheTtlSeconds * 1000, config.apiKeyCacheMaxEntries, now);
  const invalidation = createKeyInvalidation({ cache, logger });
  const lastUsed = createLastUsedTracker({ db, repo: keysRepo, logger, intervalMs: config.lastUsedFlushSeconds * 1000 });
  const verifier = createKeyVerifier({
    db,
    repo: keysRepo,
    cache,
    audit,
    lastUsed,
    bcryptCost: config.bcryptCost,
    guard: limiters.authFailures,
    maxConcurrent: config.authMaxConcurrentVerifications,
    now,
    onBcrypt,
    onFailure: (reason) => metrics.authFailures.inc({ kind: 'customer_key', reason }),
    onBusy: () => metrics.keyVerificationsBusy.inc(),
  });
  const apiKeys = createApiKeysService({
    db,
    repo: keysRepo,
    customers: customerLookup,
    audit,
    events,
    invalidation,
    bcryptCost: config.bcryptCost,
    maxActiveKeys: config.maxActiveKeysPerCustomer,
  });
  const customers = createCustomersService({ db, repo: customersRepo, lookup: customerLookup, apiKeys, audit, events, invalidation, stripe, logger });
  const usage = createUsageService({
    db,
    repo: createUsageRepository(),
    customers,
    stripeEnabled: stripe.enabled,
    now,
    onAccepted: (mode, n) => metrics.usageAccepted.inc({ mode }, n),
    // The threshold watch needs the deals, built below: bound late.
    onStored: (pairs) => watch.mark(pairs),
  });
  const forwarderRepo = createForwardingRepository();
  const usageFailures = createForwardingFailures({ repo: forwarderRepo, events });
  const forwarder = createForwardingWorker({
    db,
    repo: forwarderRepo,
    stripe,
    failures: usageFailures,
    logger: logger.child({ component: 'usage-forwarder' }),
    settings: config.forwarder,
    meterEvents: config.usage.meterEvents,
    onRun: (r) => {
      for (const outcome of ['sent', 'retried', 'failed', 'local'] as const) if (r[outcome]) metrics.forwarderOutcomes.inc({ outcome }, r[outcome]);
    },
    onCall: (outcome) => metrics.forwarderCalls.inc({ outcome }),
  });
  metrics.watch(db, () => forwarderRepo.backlog(db));
  const forwarding = createForwardingService({ db, repo: forwarderRepo, audit, stripeEnabled: stripe.enabled });
  const plans = createPlansService({ db, repo: createPlansRepository(), audit });
  const subscriptions = createSubscriptionsService({
    db,
    repo: createSubscriptionsRepository(),
    plans,
    customers,
    stripe,
    audit,
    events,
    licenseGraceDays: config.license.graceDays,
    logger,
    now,
  });
  // Our copy of the customers' Stripe invoices: written by the invoice webhooks and by reconciliation.
  const invoices = createInvoicesService({ db, repo: createInvoicesRepository(), customers, subscriptions, plans, stripe, audit, logger, now });
  // A customer's deal: its plan with its overrides (docs/LICENSES.md), read the same way by every module.
  const overridesRepo = createOverridesRepository();
  const deals = createDeals({
    db,
    overrides: overridesRepo,
    subscriptions,
    plans,
    defaultPlan: config.license.defaultPlan ?? null,
    metrics: config.usage.metrics,
    logger,
    now,
  });
  // Late usage from usage bundles: which events are late, and their true-ups (one invoice item per bundle and metric).
  const trueUpsRepo = createTrueUpsRepository();
  const trueUps = createTrueUpsService({ db, repo: trueUpsRepo, audit, deals, stripeEnabled: stripe.enabled, now });
  // Bills pending true-ups as Stripe invoice items (the usage forwarder's settings: FORWARDER_*).
  const trueUpWorker = createTrueUpWorker({
    db,
    repo: trueUpsRepo,
    stripe,
    customers,
    subscriptions,
    plans,
    audit,
    logger: logger.child({ component: 'true-ups' }),
    settings: config.forwarder,
    onOutcome: (outcome) => metrics.trueUps.inc({ outcome }),
  });
  // usage.threshold_crossed and usage.allowance_exhausted: checked after each usage write commits, once per crossing.
  const watch: ThresholdWatch = createThresholdWatch({
    db,
    deals,
    usage,
    crossings: createCrossingsRepository(),
    events,
    logger: logger.child({ component: 'threshold-watch' }),
    now,
  });
  // Admins' changes to a deal (PUT/DELETE /api/customers/:id/entitlements), and the announcement of overrides that ended.
  const entitlements = createEntitlementsService({
    db,
    repo: overridesRepo,
    deals,
    customers,
    usage,
    audit,
    events,
    // A changed deal may cross a threshold at once (a lowered allowance): the watch forgets it and checks again.
    onChanged: (customerId) => watch.customerChanged(customerId),
  });
  const overridesExpiry = createOverridesExpiry({
    db,
    repo: overridesRepo,
    deals,
    audit,
    events,
    now,
    onChanged: (customerId) => watch.customerChanged(customerId),
  });
  const overridesExpiryJob = createOverridesExpiryJob({
    expiry: overridesExpiry,
    logger: logger.child({ component: 'entitlement-overrides' }),
    intervalMs: 60_000,
  });
  const webhooks = createStripeWebhooksService({
    db,
    events: createStripeEventsRepository(),
    subscriptions,
    invoices,
    customers,
    usage: forwarding,
    usageFailures,
    eventLog: events,
    stripe,
    audit,
    logger: logger.child({ component: 'stripe-webhooks' }),
    secret: () => webhookSecret,
    toleranceSeconds: config.stripe.webhookToleranceSeconds,
    now,
    onOutcome: (type, outcome) => metrics.webhookEvents.inc({ type, outcome }),
  });

  // Webhook deliveries (docs/decisions/webhook-deliveries.md): the outbox the worker empties, and the admin routes over it.
  const deliveries = createDeliveryService({
    db,
    repo: createDeliveryRepository(),
    endpoints: webhookEndpointsRepo,
    events,
    audit,
    secretBox,
    logger: logger.child({ component: 'webhook-deliveries' }),
    settings: config.webhooks,
    now,
    onAttempt: (outcome, seconds) => {
      metrics.webhookDeliveries.inc({ outcome });
      metrics.webhookDeliveryDuration.observe(seconds);
    },
  });
  const deliveryWorker = createDeliveryWorker({
    db,
    deliveries,
    logger: logger.child({ component: 'webhook-deliveries' }),
    settings: config.webhooks,
  });
  metrics.watchWebhooks(() => deliveries.backlog());

  // Replaced on SIGHUP when the keys come from LICENSE_SIGNING_KEYS_FILE (see secrets-reload.ts).
  const licenseSigner = createLicenseSigner(signingKeysFor(config, logger), keySetSourceFor(config, logger));
  const licenses = createLicensesService({
    db,
    repo: createActivationsRepository(),
    deals,
    customers: customerLookup,
    usage,
    audit,
    signer: licenseSigner,
    logger,
    settings: config.license,
    metrics: config.usage.metrics,
    now,
    onIssued: (status) => metrics.licensesIssued.inc({ status }),
    events,
  });
  metrics.watchActivations(() => licenses.countActive());
  // Usage from air-gapped instances: signed bundles, applied once, answered with a signed receipt and a fresh license.
  const usageBundles = createUsageBundlesService({
    db,
    repo: createUsageBundlesRepository(),
    customers,
    licenses,
    usage,
    trueUps,
    signer: licenseSigner,
    events,
    audit,
    settings: { issuer: config.license.issuer, metrics: config.usage.metrics, maxEvents: config.usage.bundleMaxEvents },
    now,
  });
  // usage_events' monthly partitions: USAGE_PARTITIONS_AHEAD months ahead, strays out of the default (docs/USAGE.md#partitions).
  const usagePartitions = createUsagePartitionsJob({
    db,
    logger: logger.child({ component: 'usage-partitions' }),
    metrics,
    audit,
    ahead: config.usage.partitionsAhead,
    pack: config.usage.packSettled,
    now,
  });
  const activationSweeper = createActivationSweeper({ licenses, logger: logger.child({ component: 'license-activations' }), intervalMs: 3_600_000 });
  // license.expiring_soon and license.expired: announced once per episode, by whichever instance gets there first.
  const licenseNotices = createLicenseNotices({
    db,
    repo: createLicenseNoticesRepository(),
    subscriptions,
    events,
    logger: logger.child({ component: 'license-notices' }),
    settings: { graceDays: config.license.graceDays, expiringSoonDays: config.license.expiringSoonDays, lookbackDays: config.events.retentionDays },
    now,
  });
  const licenseNoticesJob = createLicenseNoticesJob({ notices: licenseNotices, logger: logger.child({ component: 'license-notices' }), intervalMs: 900_000 });

  // Billing the customer's people can see: the Stripe customer portal, and the period's charges so far.
  const billingPortal = createBillingPortalService({
    db,
    customers,
    stripe,
    audit,
    returnUrls: config.billing.portalReturnUrls,
    configuration: config.billing.portalConfiguration,
  });
  const upcomingInvoices = createUpcomingInvoices({
    db,
    subscriptions,
    plans,
    customers,
    usage,
    stripe,
    metrics: config.usage.metrics,
    cacheMs: config.billing.upcomingInvoiceCacheMs,
    now,
  });

  // Raw usage events past USAGE_RETENTION_MONTHS: archived, verified and dropped (docs/USAGE.md, Retention and archives).
  const usageRetention = createUsageRetentionService({
    db,
    repo: createUsageRetentionRepository(),
    audit,
    logger: logger.child({ component: 'usage-retention' }),
    settings: {
      retentionMonths: config.usage.retentionMonths,
      archiveDir: config.usage.archiveDir,
      withoutArchive: config.usage.retentionWithoutArchive,
      stripeEnabled: stripe.enabled,
    },
    now,
    onRetained: (counts) => {
      for (const [reason, n] of Object.entries(counts)) metrics.usagePartitionsRetained.set({ reason }, n);
    },
  });
  const usageRetentionJob = createUsageRetentionJob({
    retention: usageRetention,
    logger: logger.child({ component: 'usage-retention' }),
    intervalMs: 3_600_000,
  });

  return {
    config,
    db,
    logger,
    startedAt: Date.now(),
    readiness: createReadinessCheck({ db, now }),
    adminTokens,
    metricsTokens,
    /** What the configuration was read from, and Redis: GET /api/reports/preflight runs the production checklist on them. */
    env,
    redis,
    /** Admin console sessions; null with ADMIN_CONSOLE=off. */
    consoleSessions,
    replaceWebhookSecret(secret: string | undefined): void {
      webhookSecret = secret;
    },
    audit,
    events,
    eventRetention,
    secretBox,
    webhookEndpoints,
    deliveries,
    deliveryWorker,
    cache,
    invalidation,
    lastUsed,
    verifier,
    apiKeys,
    customers,
    stripe,
    usage,
    forwarder,
    forwarding,
    plans,
    subscriptions,
    invoices,
    deals,
    trueUps,
    trueUpWorker,
    entitlements,
    overridesExpiry,
    thresholdWatch: watch,
    webhooks,
    licenses,
    licenseSigner,
    licenseNotices,
    usageBundles,
    usagePartitions,
    billingPortal,
    upcomingInvoices,
    usageRetention,
    metrics,
    limiters,
    /** The clock the services and the request schemas (the usage window) read. */
    now: now ?? Date.now,

    /**
     * Background work: batched last-used writes, cross-instance cache eviction, the usage forwarder, the true-up worker
     * (late usage billed as invoice items; both only with Stripe on), webhook deliveries,
     * the stale-activation sweep, the license notices, event retention, the ends of entitlement overrides.
     */
    async start(databaseUrl: string): Promise<void> {
      lastUsed.start();
      await invalidation.listen(databaseUrl);
      forwarder.start();
      trueUpWorker.start();
      if (config.webhooks.enabled) deliveryWorker.start(databaseUrl);
      activationSweeper.start();
      licenseNoticesJob.start();
      eventRetention.start();
      overridesExpiryJob.start();
      usagePartitions.start();
      usageRetentionJob.start();
    },

    /** After the HTTP server closed: finish writes under way, then stop background work. */
    async stop(): Promise<void> {
      await usage.drained();
      await watch.stop();
      await forwarder.stop();
      await trueUpWorker.stop();
      await deliveryWorker.stop();
      deliveries.close();
      await activationSweeper.stop();
      await licenseNoticesJob.stop();
      await eventRetention.stop();
      await overridesExpiryJob.stop();
      await usagePartitions.stop();
      await usageRetentionJob.stop();
      await invalidation.stop();
      await lastUsed.stop();
    },
  };
}

export type Container = ReturnType<typeof buildContainer>;
