import type { Knex } from 'knex';
import { isUniqueViolation } from '../../db/db-errors';
import { AppError, NotFoundError } from '../../errors/app-error';
import { uuidv7 } from '../../lib/ids';
import type { ActorContext } from '../../lib/request-context';
import type { ApiKeysService } from '../api-keys/api-keys-service';
import type { KeyInvalidation } from '../api-keys/key-invalidation';
import type { AuditService } from '../audit/audit-service';
import { Customer, CustomerFilter, CustomersRepository, EMAIL_UNIQUE_INDEX } from './customers-repository';

export interface CustomersServiceDeps {
  db: Knex;
  repo: CustomersRepository;
  apiKeys: ApiKeysService;
  audit: AuditService;
  invalidation: KeyInvalidation;
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
  const { db, repo, apiKeys, audit, invalidation } = deps;

  async function get(id: string): Promise<Customer> {
    const customer = await repo.findById(db, id);
    if (!customer) throw new NotFoundError('Customer');
    return customer;
  }

  return {
    get,

    list(filter: CustomerFilter): Promise<Customer[]> {
      return repo.list(db, filter);
    },

    /** Creates the customer and its first key in one transaction; the key is returned this once. */
    async create(ctx: ActorContext, input: { email: string; companyName: string }) {
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
          const key = await apiKeys.insertPrepared(trx, ctx, prepared, null, { mode: 'initial' });
          return { customer, key, apiKey: prepared.key };
        }),
      );
    },

    async update(ctx: ActorContext, id: string, patch: { email?: string; companyName?: string }): Promise<Customer> {
      return mapEmailConflict(
        db.transaction(async (trx) => {
          const current = await repo.findById(trx, id, { forUpdate: true });
          if (!current) throw new NotFoundError('Customer');
          if (current.status !== 'active') throw new AppError('CUSTOMER_DELETED', 'The customer is deleted');
          const updated = await repo.update(trx, id, patch);
          await audit.record(trx, ctx, {
            action: 'customer.update',
            outcome: 'success',
            targetType: 'customer',
            targetId: id,
            details: { fields: Object.keys(patch).map((f) => (f === 'companyName' ? 'company_name' : f)) },
          });
          return updated;
        }),
      );
    },

    /** Soft delete: the row, its usage and its audit trail stay; every key stops working now. */
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
        return customer;
      });
      invalidation.evictLocal({ customerId: id, keyIds: null });
      return result;
    },
  };
}

export type CustomersService = ReturnType<typeof createCustomersService>;
