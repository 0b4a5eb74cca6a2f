import { z } from 'zod';
import { json } from '../../http/response-schemas';
import { issuedKeyResponse, issueKeyBody, keyJson, keyParams, keyResponse, keysResponse, rotatedKeysResponse, rotateKeysBody } from './api-keys-schemas';
import { defineRoute, type HandlersFor } from '../../http/route';
import { idParams } from '../../http/common-schemas';
import { UUID_RE } from '../../lib/ids';
import { decodeCursor, encodeCursor } from '../../lib/pagination';
import type { ApiKeysService } from './api-keys-service';

/** The run's own name: the same one again resumes it (see the route's description). */
const rotateHeaders = z.object({
  'idempotency-key': z
    .string()
    .regex(/^[\x21-\x7e]{1,190}$/, 'must be 1-190 printable ASCII characters without spaces')
    .optional()
    .describe('Names the run: sent again with the same key, a run whose answer was lost is resumed'),
});

export function apiKeysRouteSpecs() {
  return {
    postCustomersByIdKeys: defineRoute({
      method: 'post',
      path: '/api/customers/:id/keys',
      auth: 'admin',
      noStore: true,
      summary: 'Issue a key: rotate (older keys revoked, or kept for a grace period) or add one beside them',
      request: { params: idParams, body: issueKeyBody },
      responses: { 201: json(issuedKeyResponse, 'Issued; `api_key` is shown this once and never again') },
      errors: ['CUSTOMER_DELETED', 'TOO_MANY_KEYS'],
      auditAction: 'api_key.issue',
    }),
    postKeysRotate: defineRoute({
      method: 'post',
      path: '/api/keys/rotate',
      auth: 'admin',
      noStore: true,
      summary: 'Rotate the keys of every active customer (up to 1000 a request, then next_cursor) or of the given ones; new keys shown this once',
      description:
        'Send an Idempotency-Key (any 1-190 printable characters, e.g. a UUID per run) to make the run resumable: an answer lost after the ' +
        'commit (a proxy or network failure) is recovered by sending the same request with the same key. The customers that attempt ' +
        'rotated get a fresh key in place of the one nobody received (revoked at once; it is in ended_key_ids), their older keys keep the ' +
        'grace the first attempt gave them. Reuse a key only to resume a run whose answer you did not get: keys a received answer carried ' +
        'are replaced too. Keys are never stored in clear, so no answer can be replayed.',
      request: { body: rotateKeysBody, headers: rotateHeaders },
      responses: { 200: json(rotatedKeysResponse, 'The new keys, shown this once; customers skipped and why') },
      auditAction: 'api_key.bulk_rotate',
    }),
    getCustomersByIdKeys: defineRoute({
      method: 'get',
      path: '/api/customers/:id/keys',
      auth: 'admin',
      summary: 'List a customer’s keys (never a secret or hash)',
      request: { params: idParams },
      responses: { 200: json(keysResponse, 'Every key of the customer, newest first') },
    }),
    deleteCustomersByIdKeysByKeyId: defineRoute({
      method: 'delete',
      path: '/api/customers/:id/keys/:keyId',
      auth: 'admin',
      summary: 'Revoke a key at once, on every instance',
      request: { params: keyParams },
      responses: { 200: json(keyResponse, 'The key, now revoked') },
      auditAction: 'api_key.revoke',
    }),
  };
}

export function apiKeysHandlers(apiKeys: ApiKeysService): HandlersFor<ReturnType<typeof apiKeysRouteSpecs>> {
  return {
    postCustomersByIdKeys: async ({ params, body, ctx }) => {
      const issued = await apiKeys.issue(ctx, params.id, {
        name: body.name,
        gracePeriodSeconds: body.grace_period_seconds,
        keepExisting: body.keep_existing,
      });
      return { status: 201, body: { api_key: issued.apiKey, key: keyJson(issued.key), ended_key_ids: issued.endedKeyIds } };
    },
    postKeysRotate: async ({ body, headers, ctx, signal }) => {
      const afterId = decodeCursor(body.cursor, (id) => UUID_RE.test(id));
      const r = await apiKeys.rotateMany(ctx, {
        gracePeriodSeconds: body.grace_period_seconds,
        customerIds: body.customer_ids,
        afterId,
        limit: body.limit,
        idempotencyKey: headers['idempotency-key'],
        // A client that hangs up before the commit changes nothing: nobody would see the new keys.
        signal,
      });
      return {
        status: 200,
        body: {
          rotated: r.rotated.length,
          grace_period_seconds: body.grace_period_seconds,
          keys: r.rotated.map((k) => ({ customer_id: k.customerId, api_key: k.apiKey, key: keyJson(k.key), ended_key_ids: k.endedKeyIds })),
          skipped: r.skipped.map((s) => ({ customer_id: s.customerId, reason: s.reason })),
          next_cursor: r.nextAfterId ? encodeCursor(r.nextAfterId) : null,
        },
      };
    },
    getCustomersByIdKeys: async ({ params }) => ({ status: 200, body: { data: (await apiKeys.list(params.id)).map(keyJson) } }),
    deleteCustomersByIdKeysByKeyId: async ({ params, ctx }) => ({ status: 200, body: { key: keyJson(await apiKeys.revoke(ctx, params.id, params.keyId)) } }),
  };
}
