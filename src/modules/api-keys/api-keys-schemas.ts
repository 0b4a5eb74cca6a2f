import { z } from 'zod';
import { iso, text, uuid } from '../../http/common-schemas';
import type { ApiKey } from './api-keys-repository';
import { displayStart } from './key-format';

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
