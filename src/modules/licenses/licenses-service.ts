import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { Config } from '../../config';
import { AppError, NotFoundError, ValidationError } from '../../errors/app-error';
import type { InstanceKeyJwk } from '../../db/tables';
import { jwkThumbprint } from './signing-keys';
import { uuidv7 } from '../../lib/ids';
import type { EventEmitter } from '../events/events-service';
import { activationEvent, createLimitReachedEvents } from './license-events';
import { createLicenseNoticesRepository } from './license-notices-repository';
import { systemContext, type ActorContext } from '../../lib/request-context';
import type { AuditService } from '../audit/audit-service';
import type { CustomerLookup } from '../customers/customer-lookup';
import type { Deal, DealPlan, Deals } from '../entitlements/deals';
import { meteredStatuses } from '../entitlements/entitlement-rules';
import { periodUsage } from '../entitlements/metered-usage';
import { INSTANCE_LIMIT } from '../plans/plan-types';
import type { UsageService } from '../usage/usage-service';
import type { Activation, ActivationsRepository, Clock, ReleaseReason, SeatHolder } from './activations-repository';
import type { LicenseSigner } from './license-signer';
import type { LicenseClaims } from './licenses-schemas';
import { expiry, licenseState, type LicenseState, type LicenseStatus } from './license-status';

export interface LicensesServiceDeps {
  db: Knex;
  repo: ActivationsRepository;
  /** Where a customer's entitlements come from (its plan with its overrides) and its usage period. */
  deals: Pick<Deals, 'dealFor'>;
  customers: Pick<CustomerLookup, 'findById' | 'assertActive'>;
  usage: Pick<UsageService, 'periodTotals'>;
  audit: AuditService;
  signer: LicenseSigner;
  logger: Logger;
  settings: Pick<Config['license'], 'issuer' | 'ttlSeconds' | 'graceDays' | 'heartbeatDays'>;
  /** Usage metrics: the limits named after one carry the period's quantity in the license. */
  metrics: readonly string[];
  now?: () => number;
  onIssued?: (status: LicenseStatus) => void;
  /** instance.activated, .deactivated, .released (in the change's transaction) and .limit_reached (docs/LICENSES.md). */
  events: EventEmitter;
}

/** What a license is issued from: the customer's deal (a subscription's plan, or the default plan, with its overrides). */
interface Basis {
  deal: Deal;
  plan: DealPlan;
  state: LicenseState;
  /** The effective activation limit (null: unlimited). */
  instances: number | null;
}

export interface IssuedLicense {
  license: string;
  claims: LicenseClaims;
}

export interface ActivationInput {
  fingerprint: string;
  name?: string;
  hostname?: string;
  /** The instance's Ed25519 public key: its usage bundles are checked against it. */
  instanceKey?: InstanceKeyJwk;
}

const sec = (ms: number) => Math.floor(ms / 1000);
const secOrNull = (d: Date | null) => (d ? sec(d.getTime()) : null);

/**
 * Licenses and the activations they bind to (instances, counted against the deal's `limits.instances`).
 *
 * A license is issued from the customer's deal (deals.ts): its plan with the overrides that apply
 * now, so the claims, the instance limit and the metered figures say what the deal says. A fetch is
 * cheap: the subscriptions with their plans and the overrides (read together), the period's usage
 * from the daily totals only when the deal names a metric among its limits, one heartbeat update
 * when bound, one signature, one audit row. Activations of one customer are serialised by a lock on
 * the customer's row: stale ones are released, live ones counted and the new one inserted in one
 * transaction, so the instance limit holds however many instances activate at once.
 */
export function createLicensesService(deps: LicensesServiceDeps) {
  const { db, repo, deals, customers, usage, audit, signer, logger, settings, metrics } = deps;
  const now = deps.now ?? Date.now;

  const clockAt = (ms: number): Clock => ({ now: new Date(ms), cutoff: new Date(ms - settings.heartbeatDays * 86_400_000) });
  const limitEvents = createLimitReachedEvents({
    db,
    repo: createLicenseNoticesRepository(),
    events: deps.events,
    logger,
    now,
    seatsHeld: async (trx, customerId) => (await repo.seatHolders(trx, customerId, clockAt(now()))).length,
  });

  async function basis(customerId: string, nowMs: number): Promise<Basis> {
    const deal = await deals.dealFor(customerId, nowMs);
    // A deal has no plan only without a subscription (and without a default plan that exists).
    if (!deal.plan) throw new AppError('LICENSE_NOT_FOUND', 'No license: the customer has no subscription');
    const state: LicenseState = deal.subscription
      ? licenseState(deal.subscription, sec(nowMs), settings.graceDays)
      : { status: 'active', validUntil: null, graceUntil: null };
    const instances = deal.effective.limits[INSTANCE_LIMIT];
    return { deal, plan: deal.plan, state, instances: typeof instances === 'number' ? instances : null };
  }

  /**
   * exp: as license-status says, and never past the end of the overrides that apply: a license never
   * carries overrides past their end (the next one carries the plan alone).
   */
  function expiryOf(b: Basis, iat: number, ttlSeconds: number): number {
    const exp = expiry(b.state, iat, ttlSeconds);
    const end = b.deal.overridesApply ? b.deal.overrides?.expiresAt : null;
    return end ? Math.min(exp, sec(end.getTime())) : exp;
  }

  /**
   * The deal's period and, for each limit named after a usage metric, its usage so far (whole UTC
   * days from the daily totals, see periodDays: a fetch never scans raw events), with what each
   * metered limit means at it.
   */
  async function usageOf(customerId: string, deal: Deal): Promise<Pick<LicenseClaims, 'usage' | 'metered'>> {
    const quantities = await periodUsage(
      usage,
      deal,
      Object.keys(deal.effective.limits).filter((k) => metrics.includes(k)),
    );
    return {
      usage: { period_start: sec(deal.period.start.getTime()), period_end: sec(deal.period.end.getTime()), quantities },
      metered: meteredStatuses(deal.effective, quantities),
    };
  }

  async function sign(
    ctx: ActorContext,
    customerId: string,
    b: Basis,
    iat: number,
    exp: number,
    instance: string | undefined,
    offline = false,
  ): Promise<IssuedLicense> {
    const claims: LicenseClaims = { ...(await claimsOf(customerId, b, iat, exp)), jti: randomUUID(), ...(instance !== undefined ? { instance } : {}) };
    const license = await signer.sign({ ...claims });
    deps.onIssued?.(claims.status);
    await audit.recordDetached(ctx, {
      action: offline ? 'license.issue_offline' : 'license.issue',
      outcome: 'success',
      targetType: 'license',
      targetId: claims.jti,
      details: { customer_id: customerId, jti: claims.jti, status: claims.status, fingerprint: instance ?? null, exp, kid: signer.kid() },
    });
    return { license, claims };
  }

  /** What a license issued now says (its id and instance aside): signed by sign(), shown to admins by preview(). */
  async function claimsOf(customerId: string, b: Basis, iat: number, exp: number): Promise<Omit<LicenseClaims, 'jti' | 'instance'>> {
    const { features, limits } = b.deal.effective;
    const sub = b.deal.subscription;
    return {
      iss: settings.issuer,
      sub: customerId,
      iat,
      nbf: iat,
      exp,
      plan: { code: b.plan.code, name: b.plan.name },
      entitlements: { features, limits },
      ...(await usageOf(customerId, b.deal)),
      status: b.state.status,
      subscription: sub
        ? { id: sub.id, status: sub.status, current_period_end: secOrNull(sub.currentPeriodEnd), cancel_at_period_end: sub.cancelAtPeriodEnd }
        : null,
      valid_until: b.state.validUntil,
      grace_until: b.state.graceUntil,
    };
  }

  /** Releases stale activations (of one customer, or all), one audit row each, in the caller's transaction. */
  async function releaseStale(trx: Knex, clock: Clock, requestId: string | null, customerId?: string): Promise<Activation[]> {
    const released = await repo.releaseStale(trx, clock, customerId);
    await deps.events.emit(
      trx,
      released.map((a) => activationEvent('instance.released', a)),
    );
    for (const a of released) {
      await audit.record(trx, systemContext(requestId), {
        action: 'license.activation_expire',
        outcome: 'success',
        targetType: 'license_activation',
        targetId: a.id,
        details: { customer_id: a.customerId, fingerprint: a.fingerprint, last_seen_at: a.lastSeenAt.toISOString() },
      });
    }
    return released;
  }

  /** The 409 of a full deal: its instance limit, and when the next seat frees at the latest (nobody releasing anything). */
  function limitReached(limit: number, holders: SeatHolder[]): AppError {
    const next = new Date(Math.min(...holders.map((h) => h.freesAt.getTime())));
    return new AppError(
      'INSTANCE_LIMIT_REACHED',
      `The customer's plan (with its overrides) allows ${limit} instance(s), and every seat is held (by a live activation, or by a license bound to one that has not expired). ` +
        `The next seat frees by ${next.toISOString()}; releasing an activation frees its seat once its last license has expired`,
      { limit, seat_frees_at: next.toISOString() },
      { headers: { 'Retry-After': String(Math.max(1, Math.ceil((next.getTime() - now()) / 1000))) } },
    );
  }

  /**
   * An active instance that sends its key: kept when it is the key held, given to an activation that
   * has none (one made before the instance had a key), refused when it is another key (a key is
   * replaced only through a new activation: release the instance first).
   */
  async function withInstanceKey(trx: Knex, a: Activation, key: InstanceKeyJwk | undefined): Promise<Activation> {
    if (!key) return a;
    const thumbprint = jwkThumbprint(key.x);
    if (a.instanceKeyThumbprint === thumbprint) return a;
    if (a.instanceKeyThumbprint !== null) {
      throw new AppError(
        'INSTANCE_KEY_MISMATCH',
        'This instance is active with another instance key; release it (DELETE its activation) before activating it with a new key',
        { fingerprint: a.fingerprint, instance_key_thumbprint: a.instanceKeyThumbprint },
      );
    }
    return (await repo.setInstanceKey(trx, a.id, key, thumbprint)) ?? a;
  }

  async function activateWith(ctx: ActorContext, customerId: string, input: ActivationInput, b: Basis, nowMs: number, expiresAt: Date | null) {
    const clock = clockAt(nowMs);
    const limit = b.instances;
    return db.transaction(async (trx) => {
      // The customer's row lock serialises its activations (404 if it is gone, CUSTOMER_DELETED if deleted).
      await customers.assertActive(trx, customerId, { forUpdate: true });
      await releaseStale(trx, clock, ctx.requestId, customerId);
      const hold = expiresAt ? { expiresAt, seatHeldUntil: expiresAt } : {};
      const existing = await repo.touch(trx, customerId, input.fingerprint, clock, hold);
      if (existing) return { activation: await withInstanceKey(trx, existing, input.instanceKey), created: false };
      if (typeof limit === 'number') {
        // Counted under the customer's lock: a fingerprint whose released activation still holds a
        // seat takes that seat back, any other needs a free one.
        const holders = await repo.seatHolders(trx, customerId, clock);
        if (!holders.some((h) => h.fingerprint === input.fingerprint) && holders.length >= limit) throw limitReached(limit, holders);
      }
      const activation = await repo.insert(trx, {
        id: uuidv7(nowMs),
        customerId,
        fingerprint: input.fingerprint,
        name: input.name ?? null,
        hostname: input.hostname ?? null,
        expiresAt,
        instanceKey: input.instanceKey ?? null,
        instanceKeyThumbprint: input.instanceKey ? jwkThumbprint(input.instanceKey.x) : null,
        at: clock.now,
      });
      await deps.events.emit(trx, activationEvent('instance.activated', activation));
      await audit.record(trx, ctx, {
        action: 'license.activation_create',
        outcome: 'success',
        targetType: 'license_activation',
        targetId: activation.id,
        details: {
          customer_id: customerId,
          fingerprint: activation.fingerprint,
          offline: expiresAt !== null,
          instance_key_thumbprint: activation.instanceKeyThumbprint,
        },
      });
      return { activation, created: true };
    });
  }

  /** Activations holding a seat (live, or released with a license still valid), oldest first; stale ones are released on the way. */
  async function list(customerId: string, requestId: string | null = null): Promise<Activation[]> {
    const clock = clockAt(now());
    await db.transaction((trx) => releaseStale(trx, clock, requestId, customerId));
    return repo.listHolding(db, customerId, clock);
  }

  async function liveCustomer(customerId: string) {
    await customers.assertActive(db, customerId);
  }

  return {
    /**
     * The customer's license; with a fingerprint, bound to that activation, counted as its heartbeat,
     * and holding its seat until the license's exp. A plan that limits instances issues only bound
     * licenses: an unbound one would be a seat nobody counts.
     */
    async issue(ctx: ActorContext, customerId: string, fingerprint?: string): Promise<IssuedLicense> {
      const nowMs = now();
      const iat = sec(nowMs);
      const b = await basis(customerId, nowMs);
      const limit = b.instances;
      if (fingerprint === undefined && limit !== null) {
        throw new ValidationError('This plan limits instances: a license is issued only bound to an activated instance', [
          {
            path: 'fingerprint',
            message: `required: the plan (with the customer's overrides) allows ${limit} instance(s); activate (POST /api/licenses/activations), then ask with ?fingerprint=`,
          },
        ]);
      }
      const exp = expiryOf(b, iat, settings.ttlSeconds);
      if (fingerprint !== undefined && !(await repo.touch(db, customerId, fingerprint, clockAt(nowMs), { seatHeldUntil: new Date(exp * 1000) }))) {
        throw new AppError('ACTIVATION_NOT_FOUND', 'No active activation with this fingerprint: activate it first (POST /api/licenses/activations)');
      }
      return sign(ctx, customerId, b, iat, exp, fingerprint);
    },

    /** Takes a seat for an instance; `created` false when it already held one (then only a heartbeat). */
    async activate(ctx: ActorContext, customerId: string, input: ActivationInput) {
      const nowMs = now();
      const b = await basis(customerId, nowMs);
      return limitEvents.watch(customerId, input.fingerprint, () => activateWith(ctx, customerId, input, b, nowMs, null));
    },

    /**
     * An air-gapped instance's license, issued by an admin: bound to its fingerprint, valid for the
     * TTL the admin chose (still never past the end of validity or grace), and holding a seat until
     * it expires, since such an instance never calls back.
     */
    async issueOffline(ctx: ActorContext, customerId: string, input: ActivationInput & { ttlSeconds: number }): Promise<IssuedLicense> {
      await liveCustomer(customerId);
      const nowMs = now();
      const iat = sec(nowMs);
      const b = await basis(customerId, nowMs);
      const exp = expiryOf(b, iat, input.ttlSeconds);
      await limitEvents.watch(customerId, input.fingerprint, () => activateWith(ctx, customerId, input, b, nowMs, new Date(exp * 1000)));
      return sign(ctx, customerId, b, iat, exp, input.fingerprint, true);
    },

    list,

    /**
     * The activations of a fingerprint holding the instance key with this thumbprint, newest first,
     * released ones too (for checking a usage bundle's signature: whether a release was a
     * deactivation is the caller's to judge). Takes the caller's Knex or transaction.
     */
    instanceKeyActivations: (db: Knex, customerId: string, fingerprint: string, thumbprint: string): Promise<Activation[]> =>
      repo.findByInstanceKey(db, customerId, fingerprint, thumbprint),

    /**
     * For admins (the console's customer page): what a license issued now would say, and the instance seats its
     * instance limit allows and holds. Nothing is signed, issued or counted as a heartbeat.
     */
    async preview(customerId: string) {
      if (!(await customers.findById(db, customerId))) throw new NotFoundError('Customer');
      const nowMs = now();
      const iat = sec(nowMs);
      const b = await basis(customerId, nowMs);
      const claims = await claimsOf(customerId, b, iat, expiryOf(b, iat, settings.ttlSeconds));
      const held = (await repo.seatHolders(db, customerId, clockAt(nowMs))).length;
      return { claims, instances: { limit: b.instances, held } };
    },

    async listForAdmin(customerId: string, requestId: string | null) {
      if (!(await customers.findById(db, customerId))) throw new NotFoundError('Customer');
      return list(customerId, requestId);
    },

    /**
     * Releases an activation. Its seat stays held until its last bound license expires. An offline
     * activation is released only by an admin: the customer holds a license for it that no heartbeat
     * can take back.
     */
    async release(ctx: ActorContext, customerId: string, fingerprint: string, reason: Exclude<ReleaseReason, 'stale'>): Promise<Activation> {
      return db.transaction(async (trx) => {
        const found = await repo.findUnreleased(trx, customerId, fingerprint);
        if (!found) throw new NotFoundError('Activation');
        if (found.expiresAt !== null && reason === 'customer') {
          throw new AppError(
            'FORBIDDEN',
            `This instance was activated offline by an admin; only an admin can release it (its seat stays held until its license expires at ${found.expiresAt.toISOString()})`,
          );
        }
        const a = await repo.release(trx, found.id, reason, new Date(now()));
        await deps.events.emit(trx, activationEvent('instance.deactivated', a));
        await audit.record(trx, ctx, {
          action: 'license.activation_release',
          outcome: 'success',
          targetType: 'license_activation',
          targetId: a.id,
          details: { customer_id: customerId, fingerprint, by: reason, seat_held_until: a.seatHeldUntil?.toISOString() ?? null },
        });
        return a;
      });
    },

    /** Releases every stale activation (the periodic sweep); returns how many. */
    async sweep(): Promise<number> {
      return (await db.transaction((trx) => releaseStale(trx, clockAt(now()), null))).length;
    },

    /** Live activations of every customer (the gauge, read at scrape time). */
    countActive: () => repo.countAllLive(db, clockAt(now())),

    jwks: () => signer.jwks(),
    keySet: () => signer.keySet(),
  };
}

export type LicensesService = ReturnType<typeof createLicensesService>;
