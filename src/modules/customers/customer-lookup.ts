import type { Knex } from 'knex';
import { AppError, NotFoundError } from '../../errors/app-error';
import type { Customer, CustomersRepository } from './customers-repository';

/**
 * What other modules read of customers, and the rules they check: they come here, never to the
 * repository. Each read takes the caller's Knex or transaction, so a lock taken here is held by
 * the caller's transaction.
 *
 * Apart from the customers service because that service issues a new customer's first key through
 * the API-keys service: the API-keys service depends on this lookup, not on the customers
 * service, so the two services never depend on each other. The customers service offers the
 * same reads to everyone else.
 */
export function createCustomerLookup({ repo }: { repo: CustomersRepository }) {
  return {
    findById: (db: Knex, id: string): Promise<Customer | null> => repo.findById(db, id),

    findByStripeId: (db: Knex, stripeCustomerId: string): Promise<Customer | null> => repo.findByStripeId(db, stripeCustomerId),

    /** The customers among `ids` that exist, in id order (the order their row locks are taken in). */
    findMany: (db: Knex, ids: readonly string[], opts: { forUpdate?: boolean } = {}): Promise<Customer[]> => repo.findMany(db, ids, opts),

    /** Ids of active customers after `afterId`, oldest first: a walk over all of them that a cursor resumes. */
    activeIdsAfter: (db: Knex, afterId: string | undefined, limit: number): Promise<string[]> => repo.activeIdsAfter(db, afterId, limit),

    /** Customers linked to a Stripe customer, in id order. */
    withStripeCustomer: (db: Knex): Promise<Customer[]> => repo.withStripeCustomer(db),

    /** The customer, deleted or not; 404 when there is none. */
    async assertExists(db: Knex, id: string): Promise<Customer> {
      const customer = await repo.findById(db, id);
      if (!customer) throw new NotFoundError('Customer');
      return customer;
    },

    /** The customer, which must not be deleted; with forUpdate, locked until the caller's transaction ends. */
    async assertActive(db: Knex, id: string, opts: { forUpdate?: boolean } = {}): Promise<Customer> {
      const customer = await repo.findById(db, id, opts);
      if (!customer) throw new NotFoundError('Customer');
      if (customer.status !== 'active') throw new AppError('CUSTOMER_DELETED', 'The customer is deleted');
      return customer;
    },
  };
}

export type CustomerLookup = ReturnType<typeof createCustomerLookup>;
