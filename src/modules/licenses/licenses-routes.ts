import type { Request } from 'express';
import { z } from 'zod';
import { uuid } from '../../http/common-schemas';
import { json } from '../../http/response-schemas';
import { defineRoute } from '../../http/route';
import type { IssuedLicense, LicensesService } from './licenses-service';
import {
  activationBody,
  activationJson,
  activationParams,
  activationResponse,
  activationsResponse,
  jwksResponse,
  licenseQuery,
  licenseResponse,
  offlineLicenseBody,
} from './licenses-schemas';

const JWKS_PATH = '/.well-known/jwks.json';
const customerParams = z.object({ id: uuid });
const customerActivationParams = z.object({ id: uuid, fingerprint: activationParams.shape.fingerprint });

/** LICENSE_JWKS_URL, else the JWKS on the address the request came to (behind a proxy: set TRUST_PROXY). */
const jwksUrlOf = (configured: string | undefined) => (req: Request) => configured ?? `${req.protocol}://${req.get('host') ?? 'localhost'}${JWKS_PATH}`;

export function licensesRoutes(licenses: LicensesService, configuredJwksUrl: string | undefined) {
  const jwksUrl = jwksUrlOf(configuredJwksUrl);
  const licenseJson = (l: IssuedLicense, req: Request) => ({ license: l.license, claims: l.claims, jwks_url: jwksUrl(req) });

  return [
    defineRoute({
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
    }).handle(() => ({ status: 200, body: licenses.jwks(), headers: { 'Cache-Control': 'public, max-age=300' } })),
    defineRoute({
      method: 'get',
      path: '/api/licenses',
      auth: 'customer',
      noStore: true,
      summary: 'A signed license (compact JWS, EdDSA) for the calling customer; with ?fingerprint= bound to that activated instance (its heartbeat)',
      request: { query: licenseQuery },
      responses: { 200: json(licenseResponse, 'The license, its claims as signed, and where the public keys are') },
      errors: ['LICENSE_NOT_FOUND', 'ACTIVATION_NOT_FOUND'],
    }).handle(async ({ query, principal, ctx, req }) => ({
      status: 200,
      body: licenseJson(await licenses.issue(ctx, principal.customerId, query.fingerprint), req),
    })),
    defineRoute({
      method: 'post',
      path: '/api/licenses/activations',
      auth: 'customer',
      summary: 'Activate an instance (take a seat, counted against the plan’s limits.instances); 200 when it was already active',
      request: { body: activationBody },
      responses: {
        201: json(activationResponse, 'Activated'),
        200: json(activationResponse, 'Already active: its heartbeat was recorded'),
      },
      errors: ['LICENSE_NOT_FOUND', 'INSTANCE_LIMIT_REACHED', 'CUSTOMER_DELETED'],
    }).handle(async ({ body, principal, ctx }) => {
      const r = await licenses.activate(ctx, principal.customerId, body);
      return { status: r.created ? 201 : 200, body: { activation: activationJson(r.activation) } };
    }),
    defineRoute({
      method: 'get',
      path: '/api/licenses/activations',
      auth: 'customer',
      summary: 'The calling customer’s active instances, oldest first',
      responses: { 200: json(activationsResponse, 'Active activations') },
    }).handle(async ({ principal, ctx }) => ({ status: 200, body: { data: (await licenses.list(principal.customerId, ctx.requestId)).map(activationJson) } })),
    defineRoute({
      method: 'delete',
      path: '/api/licenses/activations/:fingerprint',
      auth: 'customer',
      summary: 'Release one of the calling customer’s instances, freeing its seat',
      request: { params: activationParams },
      responses: { 200: json(activationResponse, 'The activation, released') },
    }).handle(async ({ params, principal, ctx }) => ({
      status: 200,
      body: { activation: activationJson(await licenses.release(ctx, principal.customerId, params.fingerprint, 'customer')) },
    })),
    defineRoute({
      method: 'get',
      path: '/api/customers/:id/activations',
      auth: 'admin',
      summary: 'A customer’s active instances, oldest first',
      request: { params: customerParams },
      responses: { 200: json(activationsResponse, 'Active activations') },
    }).handle(async ({ params, ctx }) => ({ status: 200, body: { data: (await licenses.listForAdmin(params.id, ctx.requestId)).map(activationJson) } })),
    defineRoute({
      method: 'delete',
      path: '/api/customers/:id/activations/:fingerprint',
      auth: 'admin',
      summary: 'Release one of a customer’s instances, freeing its seat',
      request: { params: customerActivationParams },
      responses: { 200: json(activationResponse, 'The activation, released') },
      auditAction: 'license.activation_release',
    }).handle(async ({ params, ctx }) => ({
      status: 200,
      body: { activation: activationJson(await licenses.release(ctx, params.id, params.fingerprint, 'admin')) },
    })),
    defineRoute({
      method: 'post',
      path: '/api/customers/:id/licenses',
      auth: 'admin',
      noStore: true,
      summary: 'Offline activation: a license bound to an air-gapped instance’s fingerprint, with a TTL the admin chooses; takes a seat until it expires',
      request: { params: customerParams, body: offlineLicenseBody },
      responses: { 201: json(licenseResponse, 'The license to carry to the instance') },
      errors: ['LICENSE_NOT_FOUND', 'INSTANCE_LIMIT_REACHED', 'CUSTOMER_DELETED'],
      auditAction: 'license.issue_offline',
    }).handle(async ({ params, body, ctx, req }) => {
      const l = await licenses.issueOffline(ctx, params.id, { fingerprint: body.fingerprint, name: body.name, hostname: body.hostname, ttlSeconds: body.ttl });
      return { status: 201, body: licenseJson(l, req) };
    }),
  ];
}
