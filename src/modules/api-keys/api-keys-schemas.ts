import { z } from 'zod';
import { iso, text, uuid } from '../../http/common-schemas';
import type { ApiKey } from './api-keys-repository';
import { MAX_BULK_ROTATION } from './bulk-rotation-service';
import { displayStart } from './key-format';
import { id, list, nullableTimestamp, obj, timestamp } from '../../http/response-schemas';

const MAX_GRACE_SECONDS = 30 * 24 * 3600;

export const issueKeyBody = z
  .strictObject({
    name: text(100).optional(),
    grace_period_seconds: z.number().int().min(0).max(MAX_GRACE_SECONDS).optional(),
    keep_existing: z.boolean().optional(),
  })
  .refine((b) => !(b.keep_existing && b.grace_period_seconds !== undefined), {
    message: 'grace_period_seconds applies to rotation; it cannot be combined with keep_existing',
    path: ['grace_period_seconds'],
  });

/**
 * The grace period is required: an empty body must not revoke every customer's key at once.
 * customer_ids names the customers; otherwise every active one, a page (limit, cursor) at a time.
 */
export const rotateKeysBody = z
  .strictObject({
    grace_period_seconds: z.number().int().min(0).max(MAX_GRACE_SECONDS),
    customer_ids: z
      .array(uuid)
      .min(1)
      .max(MAX_BULK_ROTATION)
      .refine((ids) => new Set(ids).size === ids.length, 'must not name a customer twice')
      .optional(),
    limit: z.number().int().min(1).max(MAX_BULK_ROTATION).optional(),
    cursor: z.string().max(200).optional(),
  })
  .refine((b) => !(b.customer_ids && (b.limit !== undefined || b.cursor !== undefined)), {
    message: 'limit and cursor page through every active customer; they cannot be combined with customer_ids',
    path: ['customer_ids'],
  });

export const keyParams = z.object({ id: uuid, keyId: uuid });

export function keyStatus(k: ApiKey, now = Date.now()): 'active' | 'expired' | 'revoked' {
  if (k.revokedAt) return 'revoked';
  if (k.expiresAt && k.expiresAt.getTime() <= now) return 'expired';
  return 'active';
}

/** Never the hash, never the secret: only what identifies the key to a person. */
export const keyJson = (k: ApiKey) => ({
  id: k.id,
  customer_id: k.customerId,
  name: k.name,
  start: displayStart(k.customerId, k.start),
  status: keyStatus(k),
  created_at: iso(k.createdAt),
  last_used_at: iso(k.lastUsedAt),
  expires_at: iso(k.expiresAt),
  revoked_at: iso(k.revokedAt),
});

/** An API key as answers show it (never its secret). */
export const apiKeyResponse = obj({
  id,
  customer_id: id,
  name: z.string().nullable(),
  start: z.string(),
  status: z.enum(['active', 'expired', 'revoked']),
  created_at: timestamp,
  last_used_at: nullableTimestamp,
  expires_at: nullableTimestamp,
  revoked_at: nullableTimestamp,
});

export const issuedKeyResponse = obj({ api_key: z.string(), key: apiKeyResponse, ended_key_ids: z.array(id) });
export const keysResponse = list(apiKeyResponse);
export const rotatedKeysResponse = obj({
  rotated: z.number().int(),
  grace_period_seconds: z.number().int(),
  keys: z.array(obj({ customer_id: id, api_key: z.string(), key: apiKeyResponse, ended_key_ids: z.array(id) })),
  skipped: z.array(obj({ customer_id: id, reason: z.enum(['not_found', 'deleted', 'too_many_keys']) })),
  next_cursor: z.string().nullable(),
});
export const keyResponse = obj({ key: apiKeyResponse });
