import { z } from 'zod';
import { email, iso, searchText, text } from '../../http/common-schemas';
import { paginationQuery } from '../../lib/pagination';
import type { Customer } from './customers-repository';

export const createCustomerBody = z.strictObject({
  email,
  company_name: text(200),
});

export const updateCustomerBody = z
  .strictObject({
    email: email.optional(),
    company_name: text(200).optional(),
  })
  .refine((b) => b.email !== undefined || b.company_name !== undefined, {
    message: 'give at least one of email, company_name',
  });

export const listCustomersQuery = z.strictObject({
  status: z.enum(['active', 'deleted']).optional(),
  email: searchText(254).optional(),
  ...paginationQuery,
});

export const customerJson = (c: Customer) => ({
  id: c.id,
  email: c.email,
  company_name: c.companyName,
  status: c.status,
  stripe_customer_id: c.stripeCustomerId,
  created_at: iso(c.createdAt),
  updated_at: iso(c.updatedAt),
  deleted_at: iso(c.deletedAt),
});
