import { responses } from '../../http/response-schemas';
import { defineRoute } from '../../http/route';
import { idParams } from '../../http/common-schemas';
import type { ApiKeysService } from './api-keys-service';
import { issueKeyBody, keyJson, keyParams } from './api-keys-schemas';

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
