import { UUID_RE } from '../../lib/ids';
import type { Knex } from 'knex';
import type { CustomerRow } from '../../db/tables';

export interface Customer {
  id: string;
  email: string;
  companyName: string;
  stripeCustomerId: string | null;
  status: 'active' | 'deleted';
  createdAt: Date;
  updatedAt: Date;
  deletedAt: Date | null;
}

export interface CustomerFilter {
  status?: 'active' | 'deleted';
  email?: string;
  /** A customer id (exactly), or text found in the email or the company name (case-insensitive). */
  q?: string;
  beforeId?: string;
  limit: number;
}

export const EMAIL_UNIQUE_INDEX = 'customers_email_active_unique';

const toCustomer = (r: CustomerRow): Customer => ({
  id: r.id,
  email: r.email,
  companyName: r.company_name,
  stripeCustomerId: r.stripe_customer_id,
  status: r.status,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  deletedAt: r.deleted_at,
});

export function createCustomersRepository() {
  return {
    async insert(db: Knex, c: { id: string; email: string; companyName: string }): Promise<Customer> {
      const [row] = await db('customers').insert({ id: c.id, email: c.email, company_name: c.companyName }).returning('*');
      return toCustomer(row!);
    },

    async findById(db: Knex, id: string, opts: { forUpdate?: boolean } = {}): Promise<Customer | null> {
      const q = db('customers').where({ id }).first();
      if (opts.forUpdate) q.forUpdate();
      const row = await q;
      return row ? toCustomer(row) : null;
    },

    /** The customers among `ids` that exist, in id order (the order their row locks are taken in). */
    async findMany(db: Knex, ids: readonly string[], opts: { forUpdate?: boolean } = {}): Promise<Customer[]> {
      if (ids.length === 0) return [];
      const q = db('customers')
        .select('*')
        .whereIn('id', [...ids])
        .orderBy('id');
      if (opts.forUpdate) q.forUpdate();
      return (await q).map(toCustomer);
    },

    /** Ids of active customers after `afterId`, oldest first: a walk over all of them that a cursor resumes. */
    async activeIdsAfter(db: Knex, afterId: string | undefined, limit: number): Promise<string[]> {
      const q = db('customers').where('status', 'active').orderBy('id').limit(limit);
      if (afterId) q.where('id', '>', afterId);
      return q.pluck('id');
    },

    /** Newest first (ids are UUIDv7, so id order is creation order). */
    async list(db: Knex, f: CustomerFilter): Promise<Customer[]> {
      const q = db('customers').select('*').orderBy('id', 'desc').limit(f.limit);
      if (f.status) q.where('status', f.status);
      if (f.email) q.whereRaw('lower(email) = lower(?)', [f.email]);
      if (f.q && UUID_RE.test(f.q.toLowerCase())) q.where('id', f.q.toLowerCase());
      else if (f.q) {
        // LIKE's own characters are matched as themselves. Newest first by the primary key, so a common
        // word stops at the first page; a rare one reads the table (tens of ms at 100,000 customers).
        const pattern = `%${f.q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
        q.where((w) => {
          void w.whereILike('email', pattern).orWhereILike('company_name', pattern);
        });
      }
      if (f.beforeId) q.where('id', '<', f.beforeId);
      return (await q).map(toCustomer);
    },

    async update(db: Knex, id: string, patch: { email?: string; companyName?: string }): Promise<Customer> {
      const [row] = await db('customers')
        .where({ id })
        .update({
          ...(patch.email !== undefined ? { email: patch.email } : {}),
          ...(patch.companyName !== undefined ? { company_name: patch.companyName } : {}),
          updated_at: db.fn.now(),
        })
        .returning('*');
      return toCustomer(row!);
    },

    /** Links the Stripe customer once; a concurrent link that won first is kept. */
    async linkStripeCustomer(db: Knex, id: string, stripeCustomerId: string): Promise<Customer> {
      await db('customers').where({ id }).whereNull('stripe_customer_id').update({ stripe_customer_id: stripeCustomerId, updated_at: db.fn.now() });
      return (await this.findById(db, id))!;
    },

    async findByStripeId(db: Knex, stripeCustomerId: string): Promise<Customer | null> {
      const row = await db('customers').where({ stripe_customer_id: stripeCustomerId }).first();
      return row ? toCustomer(row) : null;
    },

    async unlinkStripeCustomer(db: Knex, stripeCustomerId: string): Promise<string | null> {
      const [row] = await db('customers').where({ stripe_customer_id: stripeCustomerId }).update({ stripe_customer_id: null, updated_at: db.fn.now() }, ['id']);
      return row?.id ?? null;
    },

    async withStripeCustomer(db: Knex): Promise<Customer[]> {
      return (await db('customers').whereNotNull('stripe_customer_id').orderBy('id')).map(toCustomer);
    },

    async markDeleted(db: Knex, id: string): Promise<Customer> {
      const [row] = await db('customers').where({ id }).update({ status: 'deleted', deleted_at: db.fn.now(), updated_at: db.fn.now() }).returning('*');
      return toCustomer(row!);
    },
  };
}

export type CustomersRepository = ReturnType<typeof createCustomersRepository>;
