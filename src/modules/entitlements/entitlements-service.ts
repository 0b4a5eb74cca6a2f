import type { Knex } from 'knex';
import { AppError, NotFoundError, ValidationError } from '../../errors/app-error';
import { iso } from '../../http/common-schemas';
import type { ActorContext } from '../../lib/request-context';
import type { AuditService } from '../audit/audit-service';
import type { CustomerLookup } from '../customers/customer-lookup';
import type { EventEmitter } from '../events/events-service';
import type { UsageService } from '../usage/usage-service';
import type { Deal, Deals } from './deals';
import { type MeteredStatus, type OverrideTerms, type Overrides } from './entitlement-rules';
import { meteredOf } from './metered-usage';
import { effectiveJson, overridesJson } from './entitlements-schemas';
import type { OverridesRepository, OverridesToStore } from './overrides-repository';

export interface EntitlementsServiceDeps {
  db: Knex;
  repo: OverridesRepository;
  deals: Pick<Deals, 'dealFor' | 'withOverrides'>;
  customers: Pick<CustomerLookup, 'assertExists' | 'assertActive'>;
  usage: Pick<UsageService, 'periodTotals'>;
  audit: AuditService;
  /** customer.entitlements_updated, in the transaction of the change. */
  events: EventEmitter;
  /** Told after each change has committed (the threshold watch drops what it remembers of the customer's deal). */
  onChanged?: (customerId: string) => void;
}

/** A deal and where each of its metered limits stands this period. */
export interface DealView {
  deal: Deal;
  metered: Record<string, MeteredStatus>;
}

const deletedCustomer = () =>
  new ValidationError('The customer is deleted: its entitlements can be read, not changed', [
    { path: 'id', message: 'the customer is deleted: a deleted customer’s entitlements cannot change' },
  ]);

/** What the audit row and the event say of a set of overrides: the terms, why and until when. */
const termsDetails = (o: { terms: OverrideTerms; note: string | null; expiresAt: Date | null }) => ({
  terms: o.terms,
  note: o.note,
  expires_at: iso(o.expiresAt),
});

/**
 * A customer's own deal, as admins manage it: overrides on top of its plan (docs/LICENSES.md, "A
 * customer's own deal"). A change locks the customer's row (so it cannot be deleted meanwhile), writes
 * the overrides, one audit row and one event in one transaction; readers everywhere see the new deal
 * from the commit on (the threshold watch through onChanged). Overrides for a deleted customer are a
 * 422 at `id`: its deal is history, shown by GET, never changed.
 */
export function createEntitlementsService(deps: EntitlementsServiceDeps) {
  const { db, repo, deals, customers, usage, audit, events } = deps;

  /** The customer's row, locked for the transaction; 404 unknown, 422 deleted. */
  async function lockActive(trx: Knex, customerId: string, forUpdate: boolean): Promise<void> {
    try {
      await customers.assertActive(trx, customerId, { forUpdate });
    } catch (err) {
      if (err instanceof AppError && err.code === 'CUSTOMER_DELETED') throw deletedCustomer();
      throw err;
    }
  }

  /** Each metered limit's state, from the period's usage in the daily totals. */
  async function view(deal: Deal): Promise<DealView> {
    return { deal, metered: await meteredOf(usage, deal) };
  }

  /** Every overage policy must have an allowance to act on: a number in the plan's limits with these overrides applied. */
  function checkOverage(deal: Deal, o: OverridesToStore): void {
    const at = new Date(deal.at);
    // As if they applied now, whatever their end: an end reached in the instant since validation changes no rule.
    const candidate: Overrides = { customerId: deal.customerId, ...o, expiresAt: null, createdAt: at, updatedAt: at };
    const { limits } = deals.withOverrides(deal, candidate).effective;
    const problems = Object.keys(o.terms.overage)
      .filter((name) => typeof limits[name] !== 'number')
      .map((name) => ({
        path: `overage.${name}`,
        message: `"${name}" has no allowance in this customer’s deal (its plan’s limits with these overrides): give limits.${name} a number to set its overage policy`,
      }));
    if (problems.length) throw new ValidationError('Invalid request body', problems);
  }

  return {
    /** The customer's deal now, deleted customers' too (history); 404 for an unknown id. */
    async get(customerId: string): Promise<DealView> {
      await customers.assertExists(db, customerId);
      return view(await deals.dealFor(customerId));
    },

    /** Replaces the customer's overrides. */
    async put(ctx: ActorContext, customerId: string, input: OverridesToStore): Promise<DealView> {
      await lockActive(db, customerId, false);
      const deal = await deals.dealFor(customerId);
      checkOverage(deal, input);
      const stored = await db.transaction(async (trx) => {
        await lockActive(trx, customerId, true);
        const { previous, stored } = await repo.upsert(trx, customerId, input);
        const after = deals.withOverrides(deal, stored);
        await audit.record(trx, ctx, {
          action: 'customer.entitlements_update',
          outcome: 'success',
          targetType: 'customer',
          targetId: customerId,
          details: { ...termsDetails(stored), replaced: previous !== null },
        });
        await events.emit(trx, {
          type: 'customer.entitlements_updated',
          customerId,
          data: { customer_id: customerId, overrides: overridesJson(stored, after.at), effective: effectiveJson(after.effective) },
        });
        return stored;
      });
      deps.onChanged?.(customerId);
      return view(deals.withOverrides(deal, stored));
    },

    /** Removes the customer's overrides: its plan alone from now on. 404 when it has none. */
    async clear(ctx: ActorContext, customerId: string): Promise<DealView> {
      await lockActive(db, customerId, false);
      const deal = deals.withOverrides(await deals.dealFor(customerId), null);
      await db.transaction(async (trx) => {
        await lockActive(trx, customerId, true);
        const removed = await repo.remove(trx, customerId);
        if (!removed) throw new NotFoundError('Entitlement overrides');
        await audit.record(trx, ctx, {
          action: 'customer.entitlements_clear',
          outcome: 'success',
          targetType: 'customer',
          targetId: customerId,
          details: termsDetails(removed),
        });
        await events.emit(trx, {
          type: 'customer.entitlements_updated',
          customerId,
          data: { customer_id: customerId, overrides: null, effective: effectiveJson(deal.effective) },
        });
      });
      deps.onChanged?.(customerId);
      return view(deal);
    },
  };
}

export type EntitlementsService = ReturnType<typeof createEntitlementsService>;
