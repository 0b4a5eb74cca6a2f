import type { EventInput } from '../events/events-service';
import type { ApiKey } from './api-keys-repository';
import { keyJson } from './api-keys-schemas';

/**
 * The event of a new key: `api_key.rotated` when it ended older keys (their ids, and when the last
 * of them stops working: at once for a rotation without grace), else `api_key.created`. Its data is
 * the key as GET shows it: never the secret, which exists only in the answer that issued it.
 */
export function issuedKeyEvent(key: ApiKey, ended: readonly ApiKey[]): EventInput {
  if (ended.length === 0) return { type: 'api_key.created', customerId: key.customerId, data: keyJson(key) };
  const graceEnd = Math.max(...ended.map((k) => (k.revokedAt ?? k.expiresAt ?? new Date(0)).getTime()));
  return {
    type: 'api_key.rotated',
    customerId: key.customerId,
    data: { ...keyJson(key), replaced_key_ids: ended.map((k) => k.id), grace_ends_at: new Date(graceEnd).toISOString() },
  };
}

/** One per key that stopped working now (revoked, or its customer deleted). */
export const revokedKeyEvent = (key: ApiKey): EventInput => ({ type: 'api_key.revoked', customerId: key.customerId, data: keyJson(key) });
