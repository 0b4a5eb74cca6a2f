import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { isUniqueViolation } from '../../db/db-errors';
import { AppError, NotFoundError } from '../../errors/app-error';
import { uuidv7 } from '../../lib/ids';
import type { ActorContext } from '../../lib/request-context';
import type { StripePort } from '../../stripe/stripe-port';
import type { ApiKeysService } from '../api-keys/api-keys-service';
import type { KeyInvalidation } from '../api-keys/key-invalidation';
import type { AuditService } from '../audit/audit-service';
import type { EventEmitter } from '../events/events-service';
import type { CustomerLookup } from './customer-lookup';
import { Customer, CustomerFilter, CustomersRepository, EMAIL_UNIQUE_INDEX } from './customers-repository';
import { customerJson } from './customers-schemas';

export interface CustomersServiceDeps {
  db: Knex;
  repo: CustomersRepository;
  /** The reads other modules use; offered by this service too (see customer-lookup.ts). */
  lookup: CustomerLookup;
  apiKeys: ApiKeysService;
  audit: AuditService;
  /** customer.* events, written in the transaction of the change they describe. */
  events: EventEmitter;
  invalidation: KeyInvalidation;
  stripe: StripePort;
  logger: Logger;
}

const emailTaken = () => new AppError('EMAIL_TAKEN', 'A customer with this email already exists');

async function mapEmailConflict<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (isUniqueViolation(err, EMAIL_UNIQUE_INDEX)) throw emailTaken();
    throw err;
  }
}

export function createCustomersService(deps: CustomersServiceDeps) {
  const { db, repo, lookup, apiKeys, audit, events, invalidation, stripe, logger } = deps;

  async function get(id: string): Promise<Customer> {
    return lookup.assertExists(db, id);
  }

  /**
   * The customer's Stripe customer, created if missing. The idempotency key is our customer id,
   * so a retry after a lost answer returns the same Stripe customer instead of making a second.
   */
  async function ensureStripeCustomer(ctx: ActorContext, customer: Customer): Promise<Customer> {
    if (customer.stripeCustomerId || !stripe.enabled) return customer;
    const stripeId = await stripe.createCustomer({ customerId: customer.id, email: customer.email, name: customer.companyName });
    // The link is a change the API shows (stripe_customer_id): its event commits with it.
    const linked = await db.transaction(async (trx) => {
      const before = await repo.findById(trx, customer.id, { forUpdate: true });
      // A concurrent link that won first is kept, and has its own event.
      if (!before || before.stripeCustomerId) return before ?? customer;
      const row = await repo.linkStripeCustomer(trx, customer.id, stripeId);
      await events.emit(trx, { type: 'customer.updated', customerId: row.id, data: customerJson(row) });
      return row;
    });
    await audit.recordDetached(ctx, {
      action: 'customer.stripe_link',
      outcome: 'success',
      targetType: 'customer',
      targetId: customer.id,
      details: { stripe_customer_id: linked.stripeCustomerId },
    });
    return linked;
  }

  /** Creates the customer and its first key in one transaction; the key is returned this once. */
  async function createLocal(ctx: ActorContext, input: { email: string; companyName: string }) {
    const id = uuidv7();
    const prepared = await apiKeys.prepare(id);
    return mapEmailConflict(
      db.transaction(async (trx) => {
        const customer = await repo.insert(trx, { id, ...input });
        await audit.record(trx, ctx, {
          action: 'customer.create',
          outcome: 'success',
          targetType: 'customer',
          targetId: id,
          details: { fields: ['email', 'company_name'] },
        });
        await events.emit(trx, { type: 'customer.created', customerId: id, data: customerJson(customer) });
        const key = await apiKeys.insertPrepared(trx, ctx, prepared, null, { mode: 'initial' });
        return { customer, key, apiKey: prepared.key };
      }),
    );
  }

  async function updateLocal(ctx: ActorContext, id: string, patch: { email?: string; companyName?: string }): Promise<Customer> {
    return mapEmailConflict(
      db.transaction(async (trx) => {
        await lookup.assertActive(trx, id, { forUpdate: true });
        const updated = await repo.update(trx, id, patch);
        await audit.record(trx, ctx, {
          action: 'customer.update',
          outcome: 'success',
          targetType: 'customer',
          targetId: id,
          details: {
            fields: Object.keys(patch)
              .filter((f) => patch[f as keyof typeof patch] !== undefined)
              .map((f) => (f === 'companyName' ? 'company_name' : f)),
          },
        });
        await events.emit(trx, { type: 'customer.updated', customerId: id, data: customerJson(updated) });
        return updated;
      }),
    );
  }

  return {
    ...lookup,
    get,
    ensureStripeCustomer,

    /** A Stripe customer deleted in Stripe (a webhook, in its transaction): the id of ours it was linked to, if any. */
    async unlinkStripeCustomer(trx: Knex, stripeCustomerId: string): Promise<string | null> {
      const id = await repo.unlinkStripeCustomer(trx, stripeCustomerId);
      const customer = id ? await repo.findById(trx, id) : null;
      if (customer) await events.emit(trx, { type: 'customer.updated', customerId: customer.id, data: customerJson(customer) });
      return id;
    },

    list(filter: CustomerFilter): Promise<Customer[]> {
      return repo.list(db, filter);
    },

    /**
     * Creates the customer locally, then its Stripe customer. If Stripe fails the customer still
     * exists, unlinked; the link is made on first need (a subscription) or by reconciliation.
     */
    async create(ctx: ActorContext, input: { email: string; companyName: string }) {
      const created = await createLocal(ctx, input);
      try {
        created.customer = await ensureStripeCustomer(ctx, created.customer);
      } catch (err) {
        logger.warn({ err, customerId: created.customer.id }, 'Stripe customer not created; it will be on first need');
      }
      return created;
    },

    /** Email and company changes go to the Stripe customer too (best effort, logged on failure). */
    async update(ctx: ActorContext, id: string, patch: { email?: string; companyName?: string }): Promise<Customer> {
      const updated = await updateLocal(ctx, id, patch);
      if (updated.stripeCustomerId && stripe.enabled) {
        try {
          await stripe.updateCustomer(
            updated.stripeCustomerId,
            {
              ...(patch.email !== undefined ? { email: updated.email } : {}),
              ...(patch.companyName !== undefined ? { name: updated.companyName } : {}),
            },
            `customer-update-${id}-${updated.updatedAt.getTime()}`,
          );
        } catch (err) {
          logger.warn({ err, customerId: id }, 'Stripe customer not updated');
        }
      }
      return updated;
    },

    /**
     * Soft delete: the row, its usage and its audit trail stay; every key stops working now.
     * The Stripe customer is left alone (its invoices and history stay with it).
     */
    async remove(ctx: ActorContext, id: string): Promise<Customer> {
      const result = await db.transaction(async (trx) => {
        const current = await repo.findById(trx, id, { forUpdate: true });
        if (!current) throw new NotFoundError('Customer');
        const alreadyDeleted = current.status === 'deleted';
        const customer = alreadyDeleted ? current : await repo.markDeleted(trx, id);
        const revokedKeyIds = await apiKeys.revokeAllInTransaction(trx, id);
        await audit.record(trx, ctx, {
          action: 'customer.delete',
          outcome: 'success',
          targetType: 'customer',
          targetId: id,
          details: { revoked_key_ids: revokedKeyIds, already_deleted: alreadyDeleted },
        });
        // Deleting it again changes nothing: no second event (its keys' api_key.revoked come from revokeAllInTransaction).
        if (!alreadyDeleted) await events.emit(trx, { type: 'customer.deleted', customerId: id, data: customerJson(customer) });
        return customer;
      });
      invalidation.evictLocal({ customerId: id, keyIds: null });
      return result;
    },
  };
}

export type CustomersService = ReturnType<typeof createCustomersService>;
