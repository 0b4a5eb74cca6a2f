import { responses } from '../../http/response-schemas';
import { defineRoute } from '../../http/route';
import { idParams } from '../../http/common-schemas';
import { UUID_RE } from '../../lib/ids';
import { decodeCursor, encodeCursor } from '../../lib/pagination';
import type { ApiKeysService } from './api-keys-service';
import { issueKeyBody, keyJson, keyParams, rotateKeysBody } from './api-keys-schemas';

export function apiKeysRoutes(apiKeys: ApiKeysService) {
  return [
    defineRoute({
      method: 'post',
      path: '/api/customers/:id/keys',
      auth: 'admin',
      summary: 'Issue a key: rotate (older keys revoked, or kept for a grace period) or add one beside them',
      response: responses.issuedKey,
      auditAction: 'api_key.issue',
      params: idParams,
      body: issueKeyBody,
      async handle({ params, body, ctx }, res) {
        const issued = await apiKeys.issue(ctx, params.id, {
          name: body.name,
          gracePeriodSeconds: body.grace_period_seconds,
          keepExisting: body.keep_existing,
        });
        res.status(201).json({ api_key: issued.apiKey, key: keyJson(issued.key), ended_key_ids: issued.endedKeyIds });
      },
    }),
    defineRoute({
      method: 'post',
      path: '/api/keys/rotate',
      auth: 'admin',
      summary: 'Rotate the keys of every active customer (up to 1000 a request, then next_cursor) or of the given ones; new keys shown this once',
      response: responses.rotatedKeys,
      auditAction: 'api_key.bulk_rotate',
      body: rotateKeysBody,
      async handle({ body, ctx }, res) {
        const afterId = decodeCursor(body.cursor, (id) => UUID_RE.test(id));
        // A client that hangs up before the commit changes nothing: nobody would see the new keys.
        const hangUp = new AbortController();
        res.once('close', () => !res.writableFinished && hangUp.abort());
        const r = await apiKeys.rotateMany(ctx, {
          gracePeriodSeconds: body.grace_period_seconds,
          customerIds: body.customer_ids,
          afterId,
          limit: body.limit,
          signal: hangUp.signal,
        });
        res.json({
          rotated: r.rotated.length,
          grace_period_seconds: body.grace_period_seconds,
          keys: r.rotated.map((k) => ({ customer_id: k.customerId, api_key: k.apiKey, key: keyJson(k.key), ended_key_ids: k.endedKeyIds })),
          skipped: r.skipped.map((s) => ({ customer_id: s.customerId, reason: s.reason })),
          next_cursor: r.nextAfterId ? encodeCursor(r.nextAfterId) : null,
        });
      },
    }),
    defineRoute({
      method: 'get',
      path: '/api/customers/:id/keys',
      auth: 'admin',
      summary: 'List a customer’s keys (never a secret or hash)',
      response: responses.keys,
      params: idParams,
      async handle({ params }, res) {
        res.json({ data: (await apiKeys.list(params.id)).map(keyJson) });
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/api/customers/:id/keys/:keyId',
      auth: 'admin',
      summary: 'Revoke a key at once, on every instance',
      response: responses.key,
      auditAction: 'api_key.revoke',
      params: keyParams,
      async handle({ params, ctx }, res) {
        res.json({ key: keyJson(await apiKeys.revoke(ctx, params.id, params.keyId)) });
      },
    }),
  ];
}
