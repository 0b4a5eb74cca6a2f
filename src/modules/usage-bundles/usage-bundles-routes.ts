import { z } from 'zod';
import type { ErrorCode } from '../../errors/app-error';
import { idParams } from '../../http/common-schemas';
import { json } from '../../http/response-schemas';
import { defineRoute, type HandlersFor } from '../../http/route';
import { bundleUploadBody, bundleUploadResponse } from './usage-bundles-schemas';
import type { UploadResult, UsageBundlesService } from './usage-bundles-service';

/** What an upload can be refused with, beyond authentication, the body's size and shape (docs/USAGE.md, Air-gapped sites). */
const REFUSALS: readonly ErrorCode[] = [
  'CUSTOMER_DELETED',
  'BUNDLE_WRONG_CUSTOMER',
  'INSTANCE_KEY_UNKNOWN',
  'INSTANCE_DEACTIVATED',
  'BUNDLE_SIGNATURE_INVALID',
  'BUNDLE_CONFLICT',
];

const replayed = {
  'Idempotent-Replayed': {
    description: 'true: this bundle was applied before; its stored receipt is answered, nothing applied again',
    schema: z.literal('true'),
  },
};

/** `bodyLimit`: USAGE_BUNDLE_MAX_BYTES (413 above). */
export function usageBundlesRouteSpecs(bodyLimit: string) {
  const answer = {
    ...json(
      bundleUploadResponse,
      'Applied (or applied before: the same receipt): the signed receipt, its claims, and a fresh license bound to the instance (or why not)',
    ),
    headers: replayed,
  };
  return {
    postUsageBundles: defineRoute({
      method: 'post',
      path: '/api/usage/bundles',
      auth: 'customer',
      noStore: true,
      summary: 'Upload a usage bundle exported by an air-gapped instance of the calling customer; answers a signed receipt and a fresh license',
      request: { body: bundleUploadBody },
      responses: { 200: answer },
      errors: REFUSALS,
      bodyLimit,
      rateLimit: 'usage',
    }),
    postCustomersByIdUsageBundles: defineRoute({
      method: 'post',
      path: '/api/customers/:id/usage-bundles',
      auth: 'admin',
      noStore: true,
      summary: 'Upload a usage bundle for a customer (a file its site sent the vendor); answers a signed receipt and a fresh license to send back',
      request: { params: idParams, body: bundleUploadBody },
      responses: { 200: answer },
      errors: REFUSALS,
      bodyLimit,
      auditAction: 'usage.bundle_upload',
    }),
  };
}

export function usageBundlesHandlers(bundles: UsageBundlesService, jwksUrl: string): HandlersFor<ReturnType<typeof usageBundlesRouteSpecs>> {
  const reply = (r: UploadResult) => ({
    status: 200 as const,
    body: {
      receipt: r.receipt,
      receipt_claims: r.claims,
      license: r.license?.license ?? null,
      claims: r.license?.claims ?? null,
      jwks_url: jwksUrl,
      license_error: r.licenseError,
    },
    ...(r.replayed ? { headers: { 'Idempotent-Replayed': 'true' as const } } : {}),
  });
  return {
    postUsageBundles: async ({ body, principal, ctx }) =>
      reply(await bundles.upload(ctx, { customerId: principal.customerId, uploadedBy: 'customer', text: body.bundle })),
    postCustomersByIdUsageBundles: async ({ params, body, ctx }) =>
      reply(await bundles.upload(ctx, { customerId: params.id, uploadedBy: 'admin', text: body.bundle })),
  };
}
