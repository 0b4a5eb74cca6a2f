import type { components, operations, paths } from './api-types';

/*
 * Every shape the SDK sends or reads comes from api-types.ts, generated from the service's OpenAPI
 * document (npm run client:types): nothing here is copied by hand, except the usage bundle's signed
 * documents at the end (a wire format, not an API answer).
 */
type PostUsage = operations['post_api_usage'];
type LicenseClaims = components['schemas']['LicenseClaims'];
type PostUsageBody = PostUsage['requestBody']['content']['application/json'];

/** One event as it goes over the wire in a batch: its idempotency key is always there. */
export type UsageEventBody = Extract<PostUsageBody, { events: unknown }>['events'][number];

/** One event as a caller gives it: the key (and occurred_at) may be left out; occurred_at may be a Date. */
export type UsageEvent = Omit<UsageEventBody, 'idempotency_key' | 'occurred_at'> & {
  idempotency_key?: UsageEventBody['idempotency_key'];
  occurred_at?: string | Date;
};

export type UsageBatchAnswer = Extract<PostUsage['responses'][201]['content']['application/json'], { events: unknown }>;
export type UsageTotals = operations['get_api_usage']['responses'][200]['content']['application/json'];
export type UsageTotalsQuery = NonNullable<operations['get_api_usage']['parameters']['query']>;
export type Me = operations['get_api_me']['responses'][200]['content']['application/json'];
export type Subscriptions = operations['get_api_subscriptions']['responses'][200]['content']['application/json'];
/** POST /api/billing/portal-session: the Stripe customer portal session's URL (short-lived) and until when to open it. */
export type PortalSession = operations['post_api_billing_portal_session']['responses'][201]['content']['application/json'];
/** GET /api/invoices/upcoming: the charges the current period will bring so far. */
export type UpcomingInvoice = operations['get_api_invoices_upcoming']['responses'][200]['content']['application/json'];
/** GET /api/invoices: a page of the customer's own invoices (never drafts). */
export type InvoicesPage = operations['get_api_invoices']['responses'][200]['content']['application/json'];
export type Invoice = InvoicesPage['data'][number];
export type InvoicesQuery = NonNullable<operations['get_api_invoices']['parameters']['query']>;

type Operation<P extends string, M extends string> = P extends keyof paths ? (M extends keyof paths[P] ? paths[P][M] : never) : never;
type JsonOf<O, S extends number> = O extends { responses: { [K in S]: { content: { 'application/json': infer J } } } } ? J : never;
/** The document's type for the answer when it lists the route; otherwise the least the SDK reads of it. */
type Or<T, Least> = [T] extends [never] ? Least : T;

/** GET /api/licenses: the compact JWS, and what the service says of it. */
export type LicenseAnswer = Or<JsonOf<Operation<'/api/licenses', 'get'>, 200>, { license: string; jwks_url?: string }>;
/** POST /api/licenses/activations: the instance's activation. */
export type ActivationAnswer = Or<
  JsonOf<Operation<'/api/licenses/activations', 'post'>, 201>,
  { activation: { fingerprint: string } & Record<string, unknown> }
>;
type BodyOf<O> = O extends { requestBody: { content: { 'application/json': infer B } } } ? B : never;
export type ActivationRequest = Or<BodyOf<Operation<'/api/licenses/activations', 'post'>>, { fingerprint: string; name?: string; hostname?: string }>;

/** What the service said of one event. */
export interface UsageReceipt {
  /** The stored event's id (the original one for a replay). */
  id: string;
  idempotencyKey: string;
  /** true: the service had it already (a retry or a resend); nothing new was counted. */
  replayed: boolean;
  queued: false;
}

/** What reportUsage answers for an event put in the on-disk queue: it is on disk, not sent yet. */
export interface QueuedReceipt {
  id: null;
  idempotencyKey: string;
  replayed: null;
  queued: true;
}

/*
 * Usage bundles (docs/LICENSES.md, "Air-gapped sites"). The bundle and the receipt are signed
 * documents, not API answers: their shapes are the wire format both sides implement. The upload's
 * answer comes from api-types.ts once the service's OpenAPI document lists POST /api/usage/bundles;
 * until then, the least the SDK reads of it.
 */

/** One event in a bundle: exactly as the queue holds it, occurred_at always there. */
export type BundleEvent = UsageEventBody & { occurred_at: string };

/** The payload of a usage bundle (a compact JWS signed by the instance key, header {alg: EdDSA, typ: usage-bundle+jws, kid}). */
export interface UsageBundlePayload {
  format: 'usage-bundle/1';
  customer_id: string;
  fingerprint: string;
  bundle_id: string;
  /** 1, 2, 3… per instance. */
  seq: number;
  /** The digest of the bundle with seq - 1 (base64url SHA-256 of its JWS text); null for seq 1. */
  previous: string | null;
  created_at: string;
  events: BundleEvent[];
}

/**
 * The claims of a bundle's receipt (a compact JWS signed with the license key, typ usage-receipt+jwt):
 * the service's `UsageBundleReceipt` component, as generated from its document.
 */
export type BundleReceiptClaims = components['schemas']['UsageBundleReceipt'];

/** POST /api/usage/bundles (and the admin's POST /api/customers/:id/usage-bundles): the receipt, and a fresh license when one could be issued. */
export type UsageBundleAnswer = Or<
  JsonOf<Operation<'/api/usage/bundles', 'post'>, 200>,
  {
    receipt: string;
    receipt_claims: BundleReceiptClaims;
    license: string | null;
    claims: LicenseClaims | null;
    jwks_url: string;
    license_error: { code: string; message: string } | null;
  }
>;
