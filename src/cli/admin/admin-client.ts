import { randomUUID } from 'node:crypto';
import { BillingApiError, type paths } from '../../../packages/client';
// The SDK's request loop (retries, Retry-After, same-origin redirects only), read from the package's
// sources in this repository: the admin client is the operator's, never part of what customers install.
import { call, defaultHttpSettings, parseRetryAfter, type HttpSettings } from '../../../packages/client/http';

/**
 * The admin API, one method per admin route, each returning the service's JSON unchanged. Every
 * request and answer type is read from the generated `paths` (packages/client/api-types.ts), so a route
 * that changes shows up here as a compile error, not as a field silently missing.
 */

type Method = 'get' | 'post' | 'patch' | 'put' | 'delete';
type Op<P extends keyof paths, M extends Method> = NonNullable<paths[P][M]>;
/** The JSON body of the success with status S. */
export type Answer<P extends keyof paths, M extends Method, S extends number = 200> =
  Op<P, M> extends { responses: Record<S, { content: { 'application/json': infer B } }> } ? B : never;
/** The query parameters of a route. */
export type QueryOf<P extends keyof paths, M extends Method> = Op<P, M> extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never;
/** The JSON request body of a route. */
export type BodyOf<P extends keyof paths, M extends Method> = Op<P, M> extends { requestBody?: { content: { 'application/json': infer B } } } ? B : never;

export type Customer = Answer<'/api/customers/{id}', 'get'>['customer'];
export type ApiKey = Answer<'/api/customers/{id}/keys', 'get'>['data'][number];
export type AuditEntry = Answer<'/api/audit', 'get'>['data'][number];
export type Plan = Answer<'/api/plans/{code}', 'get'>['plan'];
export type Subscription = Answer<'/api/customers/{id}/subscriptions', 'get'>['data'][number];
export type UsageReport = Answer<'/api/reports/usage', 'get'>;
export type LateUsageReport = Answer<'/api/reports/usage/late', 'get'>;
export type RotatedKeys = Answer<'/api/keys/rotate', 'post'>;
export type WebhookEndpoint = Answer<'/api/webhook-endpoints/{id}', 'get'>['webhook_endpoint'];
export type CreatedWebhookEndpoint = Answer<'/api/webhook-endpoints', 'post', 201>;
export type RotatedWebhookSecret = Answer<'/api/webhook-endpoints/{id}/rotate-secret', 'post'>;
export type BillingEvent = Answer<'/api/events/{id}', 'get'>['event'];
export type WebhookTest = Answer<'/api/webhook-endpoints/{id}/test', 'post'>;
export type WebhookAttempt = Answer<'/api/webhook-endpoints/{id}/deliveries', 'get'>['data'][number];
export type WebhookDelivery = Answer<'/api/events/{id}/resend', 'post'>['deliveries'][number];
export type CustomerDeal = Answer<'/api/customers/{id}/entitlements', 'get'>;
export type OverridesBody = BodyOf<'/api/customers/{id}/entitlements', 'put'>;
export type Invoice = Answer<'/api/customers/{id}/invoices', 'get'>['data'][number];
export type UsageBundleAnswer = Answer<'/api/customers/{id}/usage-bundles', 'post'>;

/**
 * GET/DELETE /api/customers/:id/activations[/:fingerprint] come with the licenses module, which is
 * not in this document yet. Only the fields the CLI shows are named; once the routes are in the
 * document (npm run client:types) these become Answer<...> like the rest.
 */
export interface Activation {
  id: string;
  fingerprint: string;
  name?: string | null;
  hostname?: string | null;
  created_at?: string;
  last_seen_at?: string | null;
  expires_at?: string | null;
  released_at?: string | null;
  /** What its usage bundles say (air-gapped instances); null when it sent none. */
  bundles?: { last_seq: number; last_upload_at: string; missing_seq: number[] } | null;
  [field: string]: unknown;
}

export interface AdminClientOptions {
  baseUrl: string;
  token: string;
  timeoutMs?: number;
  /** Retries of reads (network errors, 5xx, 429): a write is never sent twice unless it carries an idempotency key. */
  maxRetries?: number;
  /**
   * The longest Retry-After worth waiting for. A 429 or 503 asking for longer fails at once with its
   * Retry-After, so a person or a script decides, instead of a command that hangs for an hour on the
   * admin rate limit.
   */
  maxRetryAfterSeconds?: number;
  fetch?: typeof fetch;
  userAgent?: string;
}

const seg = (s: string) => encodeURIComponent(s);

/** A fetch that turns a refusal asking for a longer wait than we accept into the error at once (call() rethrows it untouched). */
function impatient(inner: typeof fetch, maxWaitSeconds: number): typeof fetch {
  return async (input, init) => {
    const res = await inner(input, init);
    if (res.status !== 429 && res.status !== 503) return res;
    const wait = parseRetryAfter(res.headers.get('retry-after'));
    if (wait === null || wait <= maxWaitSeconds) return res;
    type Envelope = { error?: { code?: string; message?: string; requestId?: string; details?: unknown } };
    const e = ((await res.json().catch(() => null)) as Envelope | null)?.error;
    throw new BillingApiError(
      res.status,
      e?.code ?? `HTTP_${res.status}`,
      e?.message ?? res.statusText,
      e?.requestId ?? res.headers.get('x-request-id'),
      wait,
      e?.details,
    );
  };
}

export class AdminClient {
  private readonly http: HttpSettings;

  constructor(o: AdminClientOptions) {
    this.http = {
      ...defaultHttpSettings,
      baseUrl: o.baseUrl,
      headers: { authorization: `Bearer ${o.token}` },
      timeoutMs: o.timeoutMs ?? defaultHttpSettings.timeoutMs,
      maxRetries: o.maxRetries ?? 2,
      backoffMaxMs: 5_000,
      fetch: impatient(o.fetch ?? ((...a) => fetch(...a)), o.maxRetryAfterSeconds ?? 10),
      userAgent: o.userAgent,
    };
  }

  private async get<T>(path: string, query?: Record<string, string | number | boolean | undefined>): Promise<T> {
    return (await call<T>(this.http, 'GET', path, { query, idempotent: true })).body;
  }

  private async send<T>(
    method: string,
    path: string,
    body?: unknown,
    opts: { headers?: Record<string, string>; idempotent?: boolean; query?: Record<string, string> } = {},
  ): Promise<T> {
    return (await call<T>(this.http, method, path, { body, headers: opts.headers, query: opts.query, idempotent: opts.idempotent ?? false })).body;
  }

  // customers
  createCustomer = (body: BodyOf<'/api/customers', 'post'>) => this.send<Answer<'/api/customers', 'post', 201>>('POST', '/api/customers', body);
  listCustomers = (query: QueryOf<'/api/customers', 'get'> = {}) => this.get<Answer<'/api/customers', 'get'>>('/api/customers', query);
  getCustomer = (id: string) => this.get<Answer<'/api/customers/{id}', 'get'>>(`/api/customers/${seg(id)}`);
  updateCustomer = (id: string, body: BodyOf<'/api/customers/{id}', 'patch'>) =>
    this.send<Answer<'/api/customers/{id}', 'patch'>>('PATCH', `/api/customers/${seg(id)}`, body);
  deleteCustomer = (id: string) => this.send<Answer<'/api/customers/{id}', 'delete'>>('DELETE', `/api/customers/${seg(id)}`);

  // a customer's own deal: its overrides of its plan
  getEntitlements = (id: string) => this.get<CustomerDeal>(`/api/customers/${seg(id)}/entitlements`);
  setEntitlements = (id: string, body: OverridesBody) =>
    this.send<Answer<'/api/customers/{id}/entitlements', 'put'>>('PUT', `/api/customers/${seg(id)}/entitlements`, body);
  clearEntitlements = (id: string) => this.send<Answer<'/api/customers/{id}/entitlements', 'delete'>>('DELETE', `/api/customers/${seg(id)}/entitlements`);

  // keys
  issueKey = (id: string, body: BodyOf<'/api/customers/{id}/keys', 'post'>) =>
    this.send<Answer<'/api/customers/{id}/keys', 'post', 201>>('POST', `/api/customers/${seg(id)}/keys`, body);
  listKeys = (id: string) => this.get<Answer<'/api/customers/{id}/keys', 'get'>>(`/api/customers/${seg(id)}/keys`);
  revokeKey = (id: string, keyId: string) =>
    this.send<Answer<'/api/customers/{id}/keys/{keyId}', 'delete'>>('DELETE', `/api/customers/${seg(id)}/keys/${seg(keyId)}`);
  /**
   * Without an idempotency key never retried: a second attempt would rotate again and the first
   * answer's keys would be lost. With one (the same for every page of a run), a retry resumes the
   * run: the service replaces the keys of an answer that never arrived.
   */
  rotateKeys = (body: BodyOf<'/api/keys/rotate', 'post'>, idempotencyKey?: string) =>
    this.send<RotatedKeys>('POST', '/api/keys/rotate', body, idempotencyKey ? { headers: { 'idempotency-key': idempotencyKey }, idempotent: true } : {});

  // audit, usage, reports
  listAudit = (query: QueryOf<'/api/audit', 'get'> = {}) => this.get<Answer<'/api/audit', 'get'>>('/api/audit', query);
  customerUsage = (id: string, query: QueryOf<'/api/customers/{id}/usage', 'get'> = {}) =>
    this.get<Answer<'/api/customers/{id}/usage', 'get'>>(`/api/customers/${seg(id)}/usage`, query);
  usageReport = (query: Omit<QueryOf<'/api/reports/usage', 'get'>, 'format'> = {}) => this.get<UsageReport>('/api/reports/usage', { ...query, format: 'json' });
  /** The same rows as CSV, as the service writes them (a header line first). */
  usageReportCsv = (query: Omit<QueryOf<'/api/reports/usage', 'get'>, 'format'> = {}) => this.get<string>('/api/reports/usage', { ...query, format: 'csv' });
  forwarding = () => this.get<Answer<'/api/reports/forwarding', 'get'>>('/api/reports/forwarding');
  retryForwarding = (body: BodyOf<'/api/reports/forwarding/retry', 'post'>) =>
    this.send<Answer<'/api/reports/forwarding/retry', 'post'>>('POST', '/api/reports/forwarding/retry', body);
  webhooks = () => this.get<Answer<'/api/reports/webhooks', 'get'>>('/api/reports/webhooks');
  /** Late usage billed by true-ups: a page, with the totals of every page. */
  lateUsage = (query: Omit<QueryOf<'/api/reports/usage/late', 'get'>, 'format'> = {}) =>
    this.get<LateUsageReport>('/api/reports/usage/late', { ...query, format: 'json' });
  /** Every true-up the filters match as CSV, as the service writes it (a header line first). */
  lateUsageCsv = (query: Omit<QueryOf<'/api/reports/usage/late', 'get'>, 'format' | 'limit' | 'cursor'> = {}) =>
    this.get<string>('/api/reports/usage/late', { ...query, format: 'csv' });
  retryLateUsage = (body: BodyOf<'/api/reports/usage/late/retry', 'post'>) =>
    this.send<Answer<'/api/reports/usage/late/retry', 'post'>>('POST', '/api/reports/usage/late/retry', body);
  /**
   * A usage bundle file an air-gapped site sent, uploaded for its customer. Safe to retry: the same
   * bundle is applied once and answers the same receipt.
   */
  importUsageBundle = (id: string, bundle: string) =>
    this.send<UsageBundleAnswer>('POST', `/api/customers/${seg(id)}/usage-bundles`, { bundle } satisfies BodyOf<'/api/customers/{id}/usage-bundles', 'post'>, {
      idempotent: true,
    });

  // usage archives (retention)
  usageArchives = () => this.get<Answer<'/api/usage/archives', 'get'>>('/api/usage/archives');
  verifyUsageArchive = (month: string) => this.send<Answer<'/api/usage/archives/{month}/verify', 'post'>>('POST', `/api/usage/archives/${seg(month)}/verify`);
  /** Safe to retry: a restore puts back only the events not there. */
  restoreUsageArchive = (month: string, body: BodyOf<'/api/usage/archives/{month}/restore', 'post'>) =>
    this.send<Answer<'/api/usage/archives/{month}/restore', 'post'>>('POST', `/api/usage/archives/${seg(month)}/restore`, body, { idempotent: true });

  // plans
  createPlan = (body: BodyOf<'/api/plans', 'post'>) => this.send<Answer<'/api/plans', 'post', 201>>('POST', '/api/plans', body);
  listPlans = (query: QueryOf<'/api/plans', 'get'> = {}) => this.get<Answer<'/api/plans', 'get'>>('/api/plans', query);
  getPlan = (code: string) => this.get<Answer<'/api/plans/{code}', 'get'>>(`/api/plans/${seg(code)}`);
  updatePlan = (code: string, body: BodyOf<'/api/plans/{code}', 'patch'>) =>
    this.send<Answer<'/api/plans/{code}', 'patch'>>('PATCH', `/api/plans/${seg(code)}`, body);
  deletePlan = (code: string) => this.send<void>('DELETE', `/api/plans/${seg(code)}`);

  // subscriptions
  /** Carries an Idempotency-Key (given, or a fresh one), so it is safe to retry: the same key gives the same subscription. */
  createSubscription = (id: string, body: BodyOf<'/api/customers/{id}/subscriptions', 'post'>, idempotencyKey: string = randomUUID()) =>
    this.send<Answer<'/api/customers/{id}/subscriptions', 'post', 201>>('POST', `/api/customers/${seg(id)}/subscriptions`, body, {
      headers: { 'idempotency-key': idempotencyKey },
      idempotent: true,
    });
  listSubscriptions = (id: string) => this.get<Answer<'/api/customers/{id}/subscriptions', 'get'>>(`/api/customers/${seg(id)}/subscriptions`);
  changePlan = (id: string, subscriptionId: string, plan: string) =>
    this.send<Answer<'/api/customers/{id}/subscriptions/{subscriptionId}', 'patch'>>(
      'PATCH',
      `/api/customers/${seg(id)}/subscriptions/${seg(subscriptionId)}`,
      { plan },
    );
  cancelSubscription = (id: string, subscriptionId: string, immediately: boolean) =>
    this.send<Answer<'/api/customers/{id}/subscriptions/{subscriptionId}', 'delete'>>(
      'DELETE',
      `/api/customers/${seg(id)}/subscriptions/${seg(subscriptionId)}`,
      undefined,
      {
        query: { immediately: String(immediately) },
      },
    );

  // licenses
  /** An offline license, bound to an air-gapped instance's fingerprint; takes a seat until it expires. */
  issueOfflineLicense = (id: string, body: BodyOf<'/api/customers/{id}/licenses', 'post'>) =>
    this.send<Answer<'/api/customers/{id}/licenses', 'post', 201>>('POST', `/api/customers/${seg(id)}/licenses`, body);

  // license activations
  listActivations = (id: string) => this.get<{ data: Activation[] }>(`/api/customers/${seg(id)}/activations`);
  releaseActivation = (id: string, fingerprint: string) =>
    this.send<{ activation: Activation }>('DELETE', `/api/customers/${seg(id)}/activations/${seg(fingerprint)}`);

  // webhook endpoints (events out). Creating one and rotating its secret are never retried: a second
  // attempt would make another secret, and the first answer's would be lost.
  createWebhookEndpoint = (body: BodyOf<'/api/webhook-endpoints', 'post'>) => this.send<CreatedWebhookEndpoint>('POST', '/api/webhook-endpoints', body);
  listWebhookEndpoints = (query: QueryOf<'/api/webhook-endpoints', 'get'> = {}) =>
    this.get<Answer<'/api/webhook-endpoints', 'get'>>('/api/webhook-endpoints', query);
  getWebhookEndpoint = (id: string) => this.get<Answer<'/api/webhook-endpoints/{id}', 'get'>>(`/api/webhook-endpoints/${seg(id)}`);
  updateWebhookEndpoint = (id: string, body: BodyOf<'/api/webhook-endpoints/{id}', 'patch'>) =>
    this.send<Answer<'/api/webhook-endpoints/{id}', 'patch'>>('PATCH', `/api/webhook-endpoints/${seg(id)}`, body);
  deleteWebhookEndpoint = (id: string) => this.send<void>('DELETE', `/api/webhook-endpoints/${seg(id)}`);
  rotateWebhookSecret = (id: string, body: BodyOf<'/api/webhook-endpoints/{id}/rotate-secret', 'post'> = {}) =>
    this.send<RotatedWebhookSecret>('POST', `/api/webhook-endpoints/${seg(id)}/rotate-secret`, body);
  /** Sends a webhook_endpoint.test event now; not retried (a retry would send another). */
  testWebhookEndpoint = (id: string) => this.send<WebhookTest>('POST', `/api/webhook-endpoints/${seg(id)}/test`);
  listWebhookDeliveries = (id: string, query: QueryOf<'/api/webhook-endpoints/{id}/deliveries', 'get'> = {}) =>
    this.get<Answer<'/api/webhook-endpoints/{id}/deliveries', 'get'>>(`/api/webhook-endpoints/${seg(id)}/deliveries`, query);

  // a customer's invoices (our copy of Stripe's)
  listInvoices = (id: string, query: QueryOf<'/api/customers/{id}/invoices', 'get'> = {}) =>
    this.get<Answer<'/api/customers/{id}/invoices', 'get'>>(`/api/customers/${seg(id)}/invoices`, query);

  // events
  listEvents = (query: QueryOf<'/api/events', 'get'> = {}) => this.get<Answer<'/api/events', 'get'>>('/api/events', query);
  getEvent = (id: string) => this.get<Answer<'/api/events/{id}', 'get'>>(`/api/events/${seg(id)}`);
  resendEvent = (id: string, body: BodyOf<'/api/events/{id}/resend', 'post'> = {}) =>
    this.send<Answer<'/api/events/{id}/resend', 'post'>>('POST', `/api/events/${seg(id)}/resend`, body);

  /** Follows next_cursor from `cursor` until the last page (or `maxPages`), yielding each page as the service sent it. */
  async *pages<T extends { next_cursor: string | null }>(
    fetchPage: (cursor: string | undefined) => Promise<T>,
    cursor?: string,
    maxPages = Infinity,
  ): AsyncGenerator<T> {
    for (let n = 0; n < maxPages; n++) {
      const page = await fetchPage(cursor);
      yield page;
      if (!page.next_cursor) return;
      cursor = page.next_cursor;
    }
  }
}
