import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { Config } from './config';
import { createAdminTokenVerifier } from './middleware/admin-auth';
import { createApiKeysRepository } from './modules/api-keys/api-keys-repository';
import { createApiKeysService } from './modules/api-keys/api-keys-service';
import { createKeyInvalidation } from './modules/api-keys/key-invalidation';
import { createKeyVerifier } from './modules/api-keys/key-verifier';
import { createLastUsedTracker } from './modules/api-keys/last-used-tracker';
import { VerificationCache } from './modules/api-keys/verification-cache';
import { createAuditRepository } from './modules/audit/audit-repository';
import { createAuditService } from './modules/audit/audit-service';
import { createCustomersRepository } from './modules/customers/customers-repository';
import { createCustomersService } from './modules/customers/customers-service';

export interface ContainerOptions {
  config: Config;
  db: Knex;
  logger: Logger;
  now?: () => number;
  onBcrypt?: () => void;
}

/** Builds every service from its dependencies. server.ts and the tests both call this. */
export function buildContainer({ config, db, logger, now, onBcrypt }: ContainerOptions) {
  const auditRepo = createAuditRepository();
  const keysRepo = createApiKeysRepository();
  const customersRepo = createCustomersRepository();

  const audit = createAuditService({ db, repo: auditRepo, logger });
  const cache = new VerificationCache(config.apiKeyCacheTtlSeconds * 1000, config.apiKeyCacheMaxEntries, now);
  const invalidation = createKeyInvalidation({ cache, logger });
  const lastUsed = createLastUsedTracker({ db, repo: keysRepo, logger, intervalMs: config.lastUsedFlushSeconds * 1000 });
  const verifier = createKeyVerifier({ db, repo: keysRepo, cache, audit, lastUsed, bcryptCost: config.bcryptCost, now, onBcrypt });
  const apiKeys = createApiKeysService({
    db,
    repo: keysRepo,
    customers: customersRepo,
    audit,
    invalidation,
    bcryptCost: config.bcryptCost,
    maxActiveKeys: config.maxActiveKeysPerCustomer,
  });
  const customers = createCustomersService({ db, repo: customersRepo, apiKeys, audit, invalidation });

  return {
    config,
    db,
    logger,
    startedAt: Date.now(),
    adminTokens: createAdminTokenVerifier(config.adminTokens),
    audit,
    cache,
    invalidation,
    lastUsed,
    verifier,
    apiKeys,
    customers,

    /** Background work: batched last-used writes, cross-instance cache eviction. */
    async start(databaseUrl: string): Promise<void> {
      lastUsed.start();
      await invalidation.listen(databaseUrl);
    },

    async stop(): Promise<void> {
      await invalidation.stop();
      await lastUsed.stop();
    },
  };
}

export type Container = ReturnType<typeof buildContainer>;
