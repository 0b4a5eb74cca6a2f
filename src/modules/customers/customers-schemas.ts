import { z } from 'zod';
import { email, iso, searchText, text } from '../../http/common-schemas';
import { paginationQuery } from '../../lib/pagination';
import type { Customer } from './customers-repository';
import { id, nullableTimestamp, obj, page, timestamp } from '../../http/response-schemas';
import { apiKeyResponse } from '../api-keys/api-keys-schemas';
import { effectiveResponse } from '../entitlements/entitlements-schemas';

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
  q: searchText(200).optional().describe('A customer id, or part of an email or company name (case-insensitive): what the console’s search box sends'),
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

const customer = obj({
  id,
  email: z.string(),
  company_name: z.string(),
  status: z.enum(['active', 'deleted']),
  stripe_customer_id: z.string().nullable(),
  created_at: timestamp,
  updated_at: timestamp,
  deleted_at: nullableTimestamp,
});

export const createdCustomerResponse = obj({ customer, api_key: z.string(), key: apiKeyResponse });
export const customerResponse = obj({ customer });
export const customersResponse = page(customer);
/** The key's customer, the key, and what the customer is entitled to now (its plan with its own overrides). */
export const meResponse = obj({
  customer,
  key: obj({ id }),
  plan: obj({ code: z.string(), name: z.string() }).nullable(),
  entitlements: effectiveResponse,
});
