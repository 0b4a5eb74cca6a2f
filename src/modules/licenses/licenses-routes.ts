import { AppError } from '../../errors/app-error';
import { z } from 'zod';
import { uuid } from '../../http/common-schemas';
import { json } from '../../http/response-schemas';
import { defineRoute, type HandlersFor } from '../../http/route';
import type { IssuedLicense, LicensesService } from './licenses-service';
import {
  activationBody,
  activationBundlesJson,
  activationJson,
  activationParams,
  activationResponse,
  activationsResponse,
  jwksResponse,
  keySetResponse,
  licensePreviewResponse,
  licenseQuery,
  licenseResponse,
  offlineLicenseBody,
  type ActivationBundles,
} from './licenses-schemas';
import type { Activation } from './activations-repository';

const JWKS_PATH = '/.well-known/jwks.json';
const customerParams = z.object({ id: uuid });
const customerActivationParams = z.object({ id: uuid, fingerprint: activationParams.shape.fingerprint });

const KEY_SET_PATH = '/.well-known/license-keys';

/**
 * `jwksUrl` is LICENSE_JWKS_URL (or, outside production, localhost): never built from the request's
 * Host header, which whoever sends the request chooses.
 */
export function licensesRouteSpecs() {
  return {
    getJwks: defineRoute({
      method: 'get',
      path: JWKS_PATH,
      auth: 'public',
      summary: 'The public keys licenses are signed with (Ed25519, JWK Set); several during a rotation',
      responses: {
        200: {
          ...json(jwksResponse, 'Every published key, each with its kid'),
          headers: { 'Cache-Control': { description: 'public, max-age=300', schema: z.string() } },
        },
      },
    }),
    getKeySet: defineRoute({
      method: 'get',
      path: KEY_SET_PATH,
      auth: 'public',
      summary:
        'The license keys signed by the vendor’s root key (a compact JWS, typ license-keys+jwt): instances accept a new signing key from it only when the root they hold verifies it',
      responses: {
        200: {
          ...json(keySetResponse, 'The signed key set'),
          headers: { 'Cache-Control': { description: 'public, max-age=300', schema: z.string() } },
        },
      },
      errors: ['NOT_FOUND'],
    }),
    getLicenses: defineRoute({
      method: 'get',
      path: '/api/licenses',
      auth: 'customer',
      noStore: true,
      summary:
        'A signed license (compact JWS, EdDSA) for the calling customer, carrying its deal (the plan with its overrides); with ?fingerprint= bound to that activated instance (its heartbeat; required when the deal limits instances)',
      request: { query: licenseQuery },
      responses: { 200: json(licenseResponse, 'The license, its claims as signed, and where the public keys are') },
      errors: ['LICENSE_NOT_FOUND', 'ACTIVATION_NOT_FOUND'],
    }),
    postLicensesActivations: defineRoute({
      method: 'post',
      path: '/api/licenses/activations',
      auth: 'customer',
      summary:
        'Activate an instance (take a seat, counted against the effective limits.instances: the plan’s, or the customer’s override); 200 when it was already active',
      request: { body: activationBody },
      responses: {
        201: json(activationResponse, 'Activated'),
        200: json(activationResponse, 'Already active: its heartbeat was recorded'),
      },
      errors: ['LICENSE_NOT_FOUND', 'INSTANCE_LIMIT_REACHED', 'CUSTOMER_DELETED', 'INSTANCE_KEY_MISMATCH'],
    }),
    getLicensesActivations: defineRoute({
      method: 'get',
      path: '/api/licenses/activations',
      auth: 'customer',
      summary: 'The calling customer’s instances holding a seat (active, or released with a bound license still valid: see seat_held_until), oldest first',
      responses: { 200: json(activationsResponse, 'Activations holding a seat') },
    }),
    deleteLicensesActivationsByFingerprint: defineRoute({
      method: 'delete',
      path: '/api/licenses/activations/:fingerprint',
      auth: 'customer',
      summary:
        'Release one of the calling customer’s instances; its seat frees once its last bound license has expired (seat_held_until). Offline activations: admins only',
      request: { params: activationParams },
      responses: { 200: json(activationResponse, 'The activation, released') },
      errors: ['FORBIDDEN'],
    }),
    getCustomersByIdLicense: defineRoute({
      method: 'get',
      path: '/api/customers/:id/license',
      auth: 'admin',
      summary: 'A customer’s license as it would be issued now (status, plan, entitlements, validity, usage) and its seats; nothing is signed or issued',
      request: { params: customerParams },
      responses: { 200: json(licensePreviewResponse, 'What a license issued now would say, and the instance seats allowed and held') },
      errors: ['LICENSE_NOT_FOUND'],
    }),
    getCustomersByIdActivations: defineRoute({
      method: 'get',
      path: '/api/customers/:id/activations',
      auth: 'admin',
      summary: 'A customer’s instances holding a seat (active, or released with a bound license still valid), oldest first',
      request: { params: customerParams },
      responses: { 200: json(activationsResponse, 'Activations holding a seat') },
    }),
    deleteCustomersByIdActivationsByFingerprint: defineRoute({
      method: 'delete',
      path: '/api/customers/:id/activations/:fingerprint',
      auth: 'admin',
      summary: 'Release one of a customer’s instances (offline ones too); its seat frees once its last bound license has expired',
      request: { params: customerActivationParams },
      responses: { 200: json(activationResponse, 'The activation, released') },
      auditAction: 'license.activation_release',
    }),
    postCustomersByIdLicenses: defineRoute({
      method: 'post',
      path: '/api/customers/:id/licenses',
      auth: 'admin',
      noStore: true,
      summary: 'Offline activation: a license bound to an air-gapped instance’s fingerprint, with a TTL the admin chooses; takes a seat until it expires',
      request: { params: customerParams, body: offlineLicenseBody },
      responses: { 201: json(licenseResponse, 'The license to carry to the instance') },
      errors: ['LICENSE_NOT_FOUND', 'INSTANCE_LIMIT_REACHED', 'CUSTOMER_DELETED', 'INSTANCE_KEY_MISMATCH'],
      auditAction: 'license.issue_offline',
    }),
  };
}

/** Where the activations list reads what each instance's usage bundles say (the usage-bundles service), one query per list. */
export interface BundleSummaries {
  summaries(customerId: string, fingerprints: readonly string[]): Promise<ReadonlyMap<string, ActivationBundles>>;
}

export function licensesHandlers(licenses: LicensesService, jwksUrl: string, bundles: BundleSummaries): HandlersFor<ReturnType<typeof licensesRouteSpecs>> {
  const licenseJson = (l: IssuedLicense) => ({ license: l.license, claims: l.claims, jwks_url: jwksUrl });
  const listJson = async (customerId: string, list: Activation[]) => {
    const summaries = await bundles.summaries(
      customerId,
      list.map((a) => a.fingerprint),
    );
    return { data: list.map((a) => ({ ...activationJson(a), bundles: activationBundlesJson(summaries.get(a.fingerprint)) })) };
  };

  return {
    getJwks: () => ({ status: 200, body: licenses.jwks(), headers: { 'Cache-Control': 'public, max-age=300' } }),
    getKeySet: () => {
      const keySet = licenses.keySet();
      if (!keySet) throw new AppError('NOT_FOUND', 'No signed license key set is published here (LICENSE_KEY_SET is not set)');
      return { status: 200, body: { key_set: keySet }, headers: { 'Cache-Control': 'public, max-age=300' } };
    },
    getLicenses: async ({ query, principal, ctx }) => ({
      status: 200,
      body: licenseJson(await licenses.issue(ctx, principal.customerId, query.fingerprint)),
    }),
    postLicensesActivations: async ({ body, principal, ctx }) => {
      const r = await licenses.activate(ctx, principal.customerId, {
        fingerprint: body.fingerprint,
        name: body.name,
        hostname: body.hostname,
        instanceKey: body.instance_key,
      });
      return { status: r.created ? 201 : 200, body: { activation: activationJson(r.activation) } };
    },
    getLicensesActivations: async ({ principal, ctx }) => ({
      status: 200,
      body: await listJson(principal.customerId, await licenses.list(principal.customerId, ctx.requestId)),
    }),
    deleteLicensesActivationsByFingerprint: async ({ params, principal, ctx }) => ({
      status: 200,
      body: { activation: activationJson(await licenses.release(ctx, principal.customerId, params.fingerprint, 'customer')) },
    }),
    getCustomersByIdLicense: async ({ params }) => ({ status: 200, body: await licenses.preview(params.id) }),
    getCustomersByIdActivations: async ({ params, ctx }) => ({
      status: 200,
      body: await listJson(params.id, await licenses.listForAdmin(params.id, ctx.requestId)),
    }),
    deleteCustomersByIdActivationsByFingerprint: async ({ params, ctx }) => ({
      status: 200,
      body: { activation: activationJson(await licenses.release(ctx, params.id, params.fingerprint, 'admin')) },
    }),
    postCustomersByIdLicenses: async ({ params, body, ctx }) => {
      const l = await licenses.issueOffline(ctx, params.id, {
        fingerprint: body.fingerprint,
        name: body.name,
        hostname: body.hostname,
        instanceKey: body.instance_key,
        ttlSeconds: body.ttl,
      });
      return { status: 201, body: licenseJson(l) };
    },
  };
}
