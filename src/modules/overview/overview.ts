import type { Knex } from 'knex';
import { runChecks } from '../../cli/preflight-checks';
import { pendingMigrations } from '../../db/migration-source';
import type { RedisCommander } from '../../security/redis-breaker';
import { z } from 'zod';
import { json, obj, timestamp } from '../../http/response-schemas';
import { defineRoute, type HandlersFor } from '../../http/route';
import { licenseState, pickSubscription, type LicenseStatus } from '../licenses/license-status';
import type { Subscription } from '../subscriptions/subscription-types';
import { SUBSCRIPTION_STATUSES } from '../../stripe/stripe-port';

/**
 * GET /api/reports/overview: what the console's overview shows first, in one answer: customers by
 * status, subscriptions by status, and active customers' licenses by status (the license rule itself,
 * src/modules/licenses/license-status.ts, applied to each customer's subscriptions: never a copy of it
 * in SQL). Usage, forwarding and webhooks have their own reports.
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
});

export function overviewRouteSpecs() {
  return {
    getReportsOverview: defineRoute({
      method: 'get',
      path: '/api/reports/overview',
      auth: 'admin',
      summary: 'Counts for the overview: customers, subscriptions by status, licenses by status',
      responses: { 200: json(overviewJson, 'The counts, as of `at`') },
    }),
  };
}

/** Only the columns the license rule reads, for every active customer's subscriptions. */
interface Row {
  customer_id: string;
  status: Subscription['status'];
  current_period_start: Date | null;
  current_period_end: Date | null;
  trial_end: Date | null;
  payment_failing_since: Date | null;
  updated_at: Date;
}

export function overviewHandlers(deps: { db: Knex; graceDays: number; now: () => number }): HandlersFor<ReturnType<typeof overviewRouteSpecs>> {
  const { db, graceDays, now } = deps;
  return {
    getReportsOverview: async () => {
      const [customers, subscriptions, rows] = await Promise.all([
        db('customers').select('status').count<{ status: string; n: string }[]>({ n: '*' }).groupBy('status'),
        db('subscriptions').select('status').count<{ status: string; n: string }[]>({ n: '*' }).groupBy('status'),
        db('subscriptions as s')
          .join('customers as c', 'c.id', 's.customer_id')
          .where('c.status', 'active')
          .orderBy([
            { column: 's.customer_id', order: 'asc' },
            { column: 's.id', order: 'desc' },
          ])
          .select<Row[]>(
            's.customer_id',
            's.status',
            's.current_period_start',
            's.current_period_end',
            's.trial_end',
            's.payment_failing_since',
            's.updated_at',
          ),
      ]);
      const count = (list: { status: string; n: string }[], status: string) => Number(list.find((r) => r.status === status)?.n ?? 0);
      const licenses: Record<LicenseStatus | 'none', number> = { active: 0, trialing: 0, grace: 0, expired: 0, none: 0 };
      const nowSec = Math.floor(now() / 1000);
      // Rows come grouped by customer, newest first: each group is one customer's subscriptions.
      for (let i = 0; i < rows.length;) {
        let j = i;
        while (j < rows.length && rows[j]!.customer_id === rows[i]!.customer_id) j++;
        const subs = rows.slice(i, j).map(
          (r) =>
            ({
              status: r.status,
              currentPeriodStart: r.current_period_start,
              currentPeriodEnd: r.current_period_end,
              trialEnd: r.trial_end,
              paymentFailingSince: r.payment_failing_since,
              updatedAt: r.updated_at,
            }) as Subscription,
        );
        licenses[licenseState(pickSubscription(subs)!, nowSec, graceDays).status]++;
        i = j;
      }
      const withSubscription = new Set(rows.map((r) => r.customer_id)).size;
      licenses.none = count(customers, 'active') - withSubscription;
      return {
        status: 200,
        body: {
          at: new Date(now()).toISOString(),
          customers: { active: count(customers, 'active'), deleted: count(customers, 'deleted') },
          subscriptions: Object.fromEntries(SUB_STATUSES.map((s) => [s, count(subscriptions, s)])) as Record<(typeof SUB_STATUSES)[number], number>,
          licenses,
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
