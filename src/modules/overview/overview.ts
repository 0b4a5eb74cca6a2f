import type { Knex } from 'knex';
import { runChecks } from '../../cli/preflight-checks';
import { pendingMigrations } from '../../db/migration-source';
import type { RedisCommander } from '../../security/redis-breaker';
import { z } from 'zod';
import { iso } from '../../http/common-schemas';
import { json, nullableTimestamp, obj, timestamp } from '../../http/response-schemas';
import { defineRoute, type HandlersFor } from '../../http/route';
import { licenseCountsSql, type LicenseStatus } from '../licenses/license-status';
import type { ForwardingService } from '../usage/forwarding-service';
import { failedEventBody } from '../usage/forwarding-routes';
import { failedEventResponse } from '../usage/usage-schemas';
import { SUBSCRIPTION_STATUSES } from '../../stripe/stripe-port';

/**
 * GET /api/reports/overview: what the console's overview shows first, in one answer: customers by
 * status, subscriptions by status, and active customers' licenses by status (the license rule of
 * src/modules/licenses/license-status.ts counted in PostgreSQL by its translation there, which a test
 * holds equal to it). Usage, forwarding and webhooks have their own reports.
 */
const SUB_STATUSES = SUBSCRIPTION_STATUSES;

const overviewJson = obj({
  at: timestamp,
  customers: obj({ active: z.number().int(), deleted: z.number().int() }),
  subscriptions: obj(Object.fromEntries(SUB_STATUSES.map((s) => [s, z.number().int()])) as Record<(typeof SUB_STATUSES)[number], z.ZodNumber>),
  licenses: obj({
    active: z.number().int(),
    trialing: z.number().int(),
    grace: z.number().int().describe('Payment failing, inside LICENSE_GRACE_DAYS: licenses still valid'),
    expired: z.number().int().describe('Past the grace, canceled, or never paid: instances are refused a fresh license'),
    none: z.number().int().describe('Active customers without any subscription'),
  }),
  forwarding: obj({
    stripe_enabled: z.boolean(),
    pending: z.number().int(),
    due: z.number().int(),
    failed: z.number().int(),
    oldest_pending_at: nullableTimestamp,
    oldest_pending_age_seconds: z.number().nonnegative(),
    recent_failures: z.array(failedEventResponse).describe('The latest 5; GET /api/reports/forwarding lists 50'),
  }).describe(
    'The usage outbox towards Stripe: its backlog, from the outbox alone. The totals of local and sent events, which count every event stored, are in GET /api/reports/forwarding',
  ),
});

export function overviewRouteSpecs() {
  return {
    getReportsOverview: defineRoute({
      method: 'get',
      path: '/api/reports/overview',
      auth: 'admin',
      summary: 'Counts for the overview: customers, subscriptions by status, licenses by status, the forwarding backlog',
      responses: { 200: json(overviewJson, 'The counts, as of `at`') },
    }),
  };
}

export function overviewHandlers(deps: {
  db: Knex;
  forwarding: ForwardingService;
  graceDays: number;
  now: () => number;
}): HandlersFor<ReturnType<typeof overviewRouteSpecs>> {
  const { db, forwarding, graceDays, now } = deps;
  return {
    getReportsOverview: async () => {
      const counted = licenseCountsSql(Math.floor(now() / 1000), graceDays);
      const [customers, subscriptions, byLicense, outbox] = await Promise.all([
        db('customers').select('status').count<{ status: string; n: string }[]>({ n: '*' }).groupBy('status'),
        db('subscriptions').select('status').count<{ status: string; n: string }[]>({ n: '*' }).groupBy('status'),
        db.raw<{ rows: { license: LicenseStatus; n: number }[] }>(counted.sql, counted.bindings),
        forwarding.backlog(5),
      ]);
      const count = (list: { status: string; n: string }[], status: string) => Number(list.find((r) => r.status === status)?.n ?? 0);
      const licenses: Record<LicenseStatus | 'none', number> = { active: 0, trialing: 0, grace: 0, expired: 0, none: 0 };
      for (const r of byLicense.rows) licenses[r.license] = r.n;
      const withSubscription = byLicense.rows.reduce((sum, r) => sum + r.n, 0);
      licenses.none = count(customers, 'active') - withSubscription;
      return {
        status: 200,
        body: {
          at: new Date(now()).toISOString(),
          customers: { active: count(customers, 'active'), deleted: count(customers, 'deleted') },
          subscriptions: Object.fromEntries(SUB_STATUSES.map((s) => [s, count(subscriptions, s)])) as Record<(typeof SUB_STATUSES)[number], number>,
          licenses,
          forwarding: {
            stripe_enabled: outbox.stripeEnabled,
            pending: outbox.backlog.pending,
            due: outbox.backlog.due,
            failed: outbox.backlog.failed,
            oldest_pending_at: iso(outbox.backlog.oldestPendingAt),
            oldest_pending_age_seconds: Math.round(outbox.backlog.oldestPendingSeconds * 1000) / 1000,
            recent_failures: outbox.failures.map(failedEventBody),
          },
        },
      };
    },
  };
}

const checkJson = obj({ name: z.string(), ok: z.boolean(), detail: z.string() });

export function preflightRouteSpecs() {
  return {
    getReportsPreflight: defineRoute({
      method: 'get',
      path: '/api/reports/preflight',
      auth: 'admin',
      summary: 'The production checklist (npm run preflight) on the settings this service runs with, its database and Redis',
      description:
        'Each check passes or fails with the fix. npm audit is not run here (it needs the npm registry): that item says so; run ' +
        '`npm run preflight` where the registry is reachable for it.',
      request: {
        query: z.strictObject({
          instances: z.coerce.number().int().min(1).max(1000).default(1).describe('How many instances will run (Redis is needed above one)'),
        }),
      },
      responses: { 200: json(obj({ passed: z.number().int(), failed: z.number().int(), checks: z.array(checkJson) }), 'Every check, in order') },
    }),
  };
}

export function preflightHandlers(deps: {
  env: NodeJS.ProcessEnv;
  db: Knex;
  redis: RedisCommander | null;
}): HandlersFor<ReturnType<typeof preflightRouteSpecs>> {
  return {
    getReportsPreflight: async ({ query }) => {
      const checks = await runChecks(
        deps.env,
        {
          // This service's own database: the one it runs on, whatever URL the checklist reads.
          async migrations() {
            try {
              return { pending: await pendingMigrations(deps.db) };
            } catch (err) {
              return { error: err instanceof Error ? err.message : String(err) };
            }
          },
          async redis() {
            if (!deps.redis) return 'this instance has no Redis connection';
            try {
              await deps.redis.sendCommand(['PING']);
              return null;
            } catch (err) {
              return err instanceof Error ? err.message : String(err);
            }
          },
          audit: () => Promise.resolve({ error: 'not run by the service (it needs the npm registry): run `npm run preflight`' }),
        },
        query.instances,
      );
      const passed = checks.filter((c) => c.ok).length;
      return { status: 200, body: { passed, failed: checks.length - passed, checks } };
    },
  };
}
