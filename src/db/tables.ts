import type { Knex } from 'knex';
import type { Entitlements, LocalPricing } from '../modules/plans/plan-types';
import type { OverrideTerms } from '../modules/entitlements/entitlement-rules';
import type { SubscriptionStatus } from '../stripe/stripe-port';

/**
 * Every table, typed once, as the migrations make it and as pg hands it back (see knex.ts):
 * int8 and numeric are strings (never lossy numbers), int2/int4 numbers, date a 'YYYY-MM-DD'
 * string, timestamptz a Date, jsonb the parsed value. Registered with Knex below, so `db('customers')`
 * is typed in every query. Repositories map these rows to camelCase objects in one place.
 *
 * Insert: what a statement sends; columns the database fills (defaults, nullable) are optional.
 * Update: only the columns the application may change. `Sql<T>` also takes an SQL expression
 * (`db.fn.now()`, `db.raw('coalesce(revoked_at, now())')`), evaluated by the database.
 */
export type Sql<T> = T | Knex.Raw;

/**
 * A jsonb value as sent: its JSON text. pg would send a top-level array as a PostgreSQL array,
 * so jsonb values are serialised here, explicitly.
 */
export type JsonText = string;
export const jsonb = (value: unknown): JsonText => JSON.stringify(value);

// customers (20261127000001)
export interface CustomerRow {
  id: string;
  email: string;
  company_name: string;
  stripe_customer_id: string | null;
  status: 'active' | 'deleted';
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
}
export interface CustomerInsert {
  /** Defaults to gen_random_uuid(); the application sends a UUIDv7. */
  id?: string;
  email: string;
  company_name: string;
  stripe_customer_id?: string | null;
  status?: CustomerRow['status'];
  created_at?: Sql<Date>;
  updated_at?: Sql<Date>;
  deleted_at?: Sql<Date> | null;
}
export interface CustomerUpdate {
  email?: string;
  company_name?: string;
  stripe_customer_id?: string | null;
  status?: CustomerRow['status'];
  updated_at?: Sql<Date>;
  deleted_at?: Sql<Date> | null;
}

// api_keys (20261127000002)
export interface ApiKeyRow {
  id: string;
  customer_id: string;
  name: string | null;
  secret_hash: string;
  start: string;
  created_at: Date;
  last_used_at: Date | null;
  expires_at: Date | null;
  revoked_at: Date | null;
}
export interface ApiKeyInsert {
  id?: string;
  customer_id: string;
  name?: string | null;
  secret_hash: string;
  start: string;
  created_at?: Sql<Date>;
  last_used_at?: Sql<Date> | null;
  expires_at?: Sql<Date> | null;
  revoked_at?: Sql<Date> | null;
}
/** The secret's hash, its start and its customer never change. */
export interface ApiKeyUpdate {
  name?: string | null;
  last_used_at?: Sql<Date> | null;
  expires_at?: Sql<Date> | null;
  revoked_at?: Sql<Date> | null;
}

// audit_log (20261127000003, client_request_id 20261128090000)
export type AuditActor = 'admin' | 'customer' | 'stripe' | 'system';
export type AuditOutcome = 'success' | 'failure' | 'denied';

export interface AuditLogRow {
  /** bigserial */
  id: string;
  at: Date;
  actor: AuditActor;
  actor_id: string | null;
  action: string;
  outcome: AuditOutcome;
  target_type: string | null;
  target_id: string | null;
  ip: string | null;
  request_id: string | null;
  client_request_id: string | null;
  details: Record<string, unknown>;
}
export interface AuditLogInsert {
  at?: Sql<Date>;
  actor: AuditActor;
  actor_id?: string | null;
  action: string;
  outcome: AuditOutcome;
  target_type?: string | null;
  target_id?: string | null;
  ip?: string | null;
  request_id?: string | null;
  client_request_id?: string | null;
  details?: JsonText;
}
/** Append-only: no column is ever updated. */
export type AuditLogUpdate = Record<string, never>;

// usage_events (20261127000004; partitioned, and its forwarding moved to usage_outbox, 20261208000000)
/**
 * Where an event is in its forwarding, as the API and reports say it: `pending`/`failed`/`sent` from
 * its usage_outbox row (`sent` also once that row is gone), `local` and `late` (20261207120000: usage
 * of a period Stripe has already invoiced, billed by a true-up, never as a meter event) from the event.
 */
export type ForwardingState = 'pending' | 'sent' | 'failed' | 'local' | 'late';
/** usage_events.state: s (to Stripe, through usage_outbox), l (local), t (late: a true-up bills it). */
export type UsageEventRoute = 's' | 'l' | 't';

/** An event: written once, never updated on the hot path. Its receipt is the time in its UUIDv7 id (usage_uuid_time). */
export interface UsageEventRow {
  occurred_at: Date;
  id: string;
  customer_id: string;
  /** The first day of occurred_at's UTC month: the partition key. */
  occurred_month: Date;
  state: UsageEventRoute;
  /** The first 16 bytes of the request fingerprint's SHA-256 (hex text before 20261208000000). */
  request_hash: Buffer;
  metric: string;
  /** numeric(20,6) */
  quantity: string;
  idempotency_key: string;
}
export interface UsageEventInsert {
  occurred_at: Sql<Date>;
  id: string;
  customer_id: string;
  occurred_month: Sql<Date>;
  state: UsageEventRoute;
  request_hash: Buffer;
  metric: string;
  quantity: string;
  idempotency_key: string;
}
export interface UsageEventUpdate {
  state?: UsageEventRoute;
}

// usage_outbox (20261208000000)
/** An event's forwarding to Stripe, from its write until a day after Stripe took it. */
export type OutboxState = 'pending' | 'sent' | 'failed';
export interface UsageOutboxRow {
  occurred_at: Date;
  /** The event's receipt. */
  created_at: Date;
  next_attempt_at: Date | null;
  sent_at: Date | null;
  id: string;
  customer_id: string;
  /** Our id of the Stripe call that carried it (20261201000000). */
  stripe_submission_id: string | null;
  occurred_month: Date;
  attempts: number;
  state: OutboxState;
  metric: string;
  /** numeric(20,6) */
  quantity: string;
  idempotency_key: string;
  last_error: string | null;
}
export type UsageOutboxInsert = Omit<UsageOutboxRow, 'created_at' | 'attempts' | 'next_attempt_at' | 'sent_at' | 'stripe_submission_id' | 'last_error'> &
  Partial<Pick<UsageOutboxRow, 'attempts' | 'next_attempt_at' | 'sent_at' | 'stripe_submission_id' | 'last_error'>>;
export interface UsageOutboxUpdate {
  state?: OutboxState;
  attempts?: Sql<number>;
  next_attempt_at?: Sql<Date> | null;
  last_error?: string | null;
  sent_at?: Sql<Date> | null;
  stripe_submission_id?: string | null;
}

// usage_daily (20261127000004)
export interface UsageDailyRow {
  customer_id: string;
  metric: string;
  /** date, kept as 'YYYY-MM-DD' */
  day: string;
  /** smallint */
  shard: number;
  /** numeric(26,6) */
  quantity: string;
  /** int8 */
  events: string;
}
export type UsageDailyInsert = UsageDailyRow;
export interface UsageDailyUpdate {
  quantity?: Sql<string>;
  events?: Sql<string>;
}

// plans (20261127000005)
export interface PlanRow {
  id: string;
  code: string;
  name: string;
  entitlements: Entitlements;
  stripe_price_id: string | null;
  /** {metric: Stripe price id} */
  metered_prices: Record<string, string>;
  /** What the plan costs for a local estimate (20261207060000); null: none. */
  local_pricing: LocalPricing | null;
  status: 'active' | 'archived';
  created_at: Date;
  updated_at: Date;
}
export interface PlanInsert {
  id: string;
  code: string;
  name: string;
  entitlements: JsonText;
  stripe_price_id?: string | null;
  metered_prices?: JsonText;
  local_pricing?: JsonText | null;
  status?: PlanRow['status'];
  created_at?: Sql<Date>;
  updated_at?: Sql<Date>;
}
export interface PlanUpdate {
  name?: string;
  entitlements?: JsonText;
  stripe_price_id?: string | null;
  metered_prices?: JsonText;
  local_pricing?: JsonText | null;
  status?: PlanRow['status'];
  updated_at?: Sql<Date>;
}

// subscriptions (20261127000006)
export interface SubscriptionRow {
  id: string;
  customer_id: string;
  plan_id: string;
  stripe_subscription_id: string | null;
  status: SubscriptionStatus;
  current_period_start: Date | null;
  current_period_end: Date | null;
  cancel_at_period_end: boolean;
  canceled_at: Date | null;
  trial_end: Date | null;
  /** int8: when the state applied was read from Stripe (ms) */
  stripe_state_at: string | null;
  /** When the status became past_due or unpaid (the start of a license's grace); null otherwise. */
  payment_failing_since: Date | null;
  created_at: Date;
  updated_at: Date;
}
export interface SubscriptionInsert {
  id: string;
  customer_id: string;
  plan_id: string;
  stripe_subscription_id?: string | null;
  status: SubscriptionStatus;
  current_period_start?: Date | null;
  current_period_end?: Date | null;
  cancel_at_period_end?: boolean;
  canceled_at?: Date | null;
  trial_end?: Date | null;
  stripe_state_at?: string | number | null;
  created_at?: Sql<Date>;
  updated_at?: Sql<Date>;
}
/** Its customer and its Stripe subscription never change. */
export interface SubscriptionUpdate {
  plan_id?: string;
  status?: SubscriptionStatus;
  current_period_start?: Date | null;
  current_period_end?: Date | null;
  cancel_at_period_end?: boolean;
  canceled_at?: Date | null;
  trial_end?: Date | null;
  stripe_state_at?: string | number | null;
  updated_at?: Sql<Date>;
}

// stripe_events (20261127000007)
export interface StripeEventRow {
  /** Stripe's event id */
  id: string;
  type: string;
  /** int8: the event's `created`, in seconds */
  stripe_created: string;
  object_id: string | null;
  received_at: Date;
  processed_at: Date | null;
  attempts: number;
  last_error: string | null;
}
export interface StripeEventInsert {
  id: string;
  type: string;
  stripe_created: string | number;
  object_id?: string | null;
  received_at?: Sql<Date>;
  processed_at?: Sql<Date> | null;
  attempts?: number;
  last_error?: string | null;
}
export interface StripeEventUpdate {
  processed_at?: Sql<Date> | null;
  attempts?: Sql<number>;
  last_error?: string | null;
}

/** Who released an activation: the customer's instance, an admin, or the heartbeat sweep. */
export type ActivationReleaseReason = 'customer' | 'admin' | 'stale';

export interface ActivationRow {
  id: string;
  customer_id: string;
  fingerprint: string;
  name: string | null;
  hostname: string | null;
  created_at: Date;
  last_seen_at: Date;
  /** Offline activations: the license's end; the seat is held until then. */
  expires_at: Date | null;
  released_at: Date | null;
  release_reason: ActivationReleaseReason | null;
  /** The exp of the last license bound to it: its seat is held until then, released or not. */
  seat_held_until: Date | null;
  /** The instance's Ed25519 public key (20261207120000): what its usage bundles are signed with. */
  instance_key: InstanceKeyJwk | null;
  /** Its RFC 7638 thumbprint: the `kid` of its bundles. */
  instance_key_thumbprint: string | null;
}
/** An instance's public key as stored: only the members that make it. */
export interface InstanceKeyJwk {
  kty: 'OKP';
  crv: 'Ed25519';
  x: string;
}
export type ActivationInsert = Pick<ActivationRow, 'id' | 'customer_id' | 'fingerprint'> &
  Partial<Pick<ActivationRow, 'name' | 'hostname' | 'expires_at' | 'seat_held_until' | 'instance_key_thumbprint'>> & {
    created_at?: Sql<Date>;
    last_seen_at?: Sql<Date>;
    instance_key?: JsonText | null;
  };
export interface ActivationUpdate {
  name?: string | null;
  hostname?: string | null;
  last_seen_at?: Sql<Date>;
  expires_at?: Sql<Date> | null;
  released_at?: Sql<Date> | null;
  release_reason?: ActivationReleaseReason | null;
  seat_held_until?: Sql<Date> | null;
  instance_key?: JsonText | null;
  instance_key_thumbprint?: string | null;
}

// usage_bundles, usage_true_ups (20261207120000)
export interface UsageBundleRow {
  customer_id: string;
  bundle_id: string;
  fingerprint: string;
  seq: number;
  /** The digest of the bundle before it, as the bundle says (null for the first). */
  previous: string | null;
  /** SHA-256 of the bundle's JWS text, base64url. */
  digest: string;
  instance_key_thumbprint: string;
  bundle_created_at: Date;
  events: number;
  applied: number;
  duplicates: number;
  rejected: number;
  late: number;
  /** `previous` is not the digest of the bundle of seq - 1 held here. */
  previous_mismatch: boolean;
  /** The receipt answered (a compact JWS): answered again for the same bundle. */
  receipt: string;
  uploaded_by: 'customer' | 'admin';
  uploaded_at: Date;
}
export type UsageBundleInsert = Omit<UsageBundleRow, 'uploaded_at' | 'previous_mismatch'> & { uploaded_at?: Sql<Date>; previous_mismatch?: boolean };

export type TrueUpState = 'pending' | 'sent' | 'failed' | 'local';
export interface UsageTrueUpRow {
  id: string;
  customer_id: string;
  bundle_id: string;
  metric: string;
  /** numeric(20,6) */
  quantity: string;
  events: number;
  occurred_from: Date;
  occurred_to: Date;
  state: TrueUpState;
  attempts: number;
  next_attempt_at: Date | null;
  last_error: string | null;
  /** The metered price it was billed at (the plan's, when it was sent). */
  stripe_price_id: string | null;
  stripe_invoice_item_id: string | null;
  created_at: Date;
  sent_at: Date | null;
}
export type UsageTrueUpInsert = Pick<
  UsageTrueUpRow,
  'id' | 'customer_id' | 'bundle_id' | 'metric' | 'quantity' | 'events' | 'occurred_from' | 'occurred_to' | 'state'
> & {
  next_attempt_at?: Sql<Date> | null;
  created_at?: Sql<Date>;
};
export type UsageTrueUpUpdate = Partial<Pick<UsageTrueUpRow, 'state' | 'last_error' | 'stripe_price_id' | 'stripe_invoice_item_id'>> & {
  attempts?: Sql<number>;
  next_attempt_at?: Sql<Date> | null;
  sent_at?: Sql<Date> | null;
};

// events, webhook_endpoints, webhook_endpoint_secrets, webhook_deliveries, webhook_attempts (20261207020000)
export interface EventRow {
  /** evt_ + a UUIDv7 in hex. */
  id: string;
  type: string;
  customer_id: string | null;
  /** The object as the API shows it after the change; never a secret. */
  data: Record<string, unknown>;
  created_at: Date;
}
export interface EventInsert {
  id: string;
  type: string;
  customer_id: string | null;
  data: JsonText;
  created_at?: Sql<Date>;
}

export type WebhookEndpointDisabledReason = 'admin' | 'failing';
export interface WebhookEndpointRow {
  id: string;
  url: string;
  events: string[];
  description: string | null;
  disabled: boolean;
  disabled_reason: WebhookEndpointDisabledReason | null;
  disabled_at: Date | null;
  failing_since: Date | null;
  last_success_at: Date | null;
  created_at: Date;
  updated_at: Date;
}
export type WebhookEndpointInsert = Pick<WebhookEndpointRow, 'id' | 'url' | 'events'> & { description?: string | null };
export interface WebhookEndpointUpdate {
  url?: string;
  events?: string[];
  description?: string | null;
  disabled?: boolean;
  disabled_reason?: WebhookEndpointDisabledReason | null;
  disabled_at?: Sql<Date> | null;
  failing_since?: Sql<Date> | null;
  last_success_at?: Sql<Date> | null;
  updated_at?: Sql<Date>;
}

export interface WebhookEndpointSecretRow {
  id: string;
  endpoint_id: string;
  /** Encrypted (secret-box.ts); never the secret itself. */
  ciphertext: string;
  created_at: Date;
  /** Null: the current secret; otherwise a rotated-out one that keeps signing until then. */
  expires_at: Date | null;
}
export type WebhookEndpointSecretInsert = Pick<WebhookEndpointSecretRow, 'id' | 'endpoint_id' | 'ciphertext'> & { expires_at?: Sql<Date> | null };
export interface WebhookEndpointSecretUpdate {
  expires_at?: Sql<Date> | null;
}

export type WebhookDeliveryState = 'pending' | 'delivered' | 'failed';
export interface WebhookDeliveryRow {
  /** bigserial: a string. */
  id: string;
  event_id: string;
  endpoint_id: string;
  state: WebhookDeliveryState;
  attempts: number;
  next_attempt_at: Date;
  leased_until: Date | null;
  leased_by: string | null;
  last_attempt_at: Date | null;
  last_status: number | null;
  last_error: string | null;
  delivered_at: Date | null;
  created_at: Date;
}
export type WebhookDeliveryInsert = Pick<WebhookDeliveryRow, 'event_id' | 'endpoint_id'> & { next_attempt_at?: Sql<Date> };
export interface WebhookDeliveryUpdate {
  state?: WebhookDeliveryState;
  attempts?: Sql<number>;
  next_attempt_at?: Sql<Date>;
  leased_until?: Sql<Date> | null;
  leased_by?: string | null;
  last_attempt_at?: Sql<Date> | null;
  last_status?: number | null;
  last_error?: string | null;
  delivered_at?: Sql<Date> | null;
}

export type WebhookAttemptOutcome = 'delivered' | 'failed';
export interface WebhookAttemptRow {
  id: string;
  delivery_id: string;
  endpoint_id: string;
  event_id: string;
  attempted_at: Date;
  outcome: WebhookAttemptOutcome;
  status: number | null;
  duration_ms: number;
  /** The first 1 kB of the answer. */
  response_body: string | null;
  error: string | null;
}
export type WebhookAttemptInsert = Omit<WebhookAttemptRow, 'id' | 'attempted_at'> & { attempted_at?: Sql<Date> };
export type WebhookAttemptUpdate = never;

// license_notices (20261207031500)
export type LicenseNoticeKind = 'expiring_soon' | 'expired';
export interface LicenseNoticeRow {
  customer_id: string;
  kind: LicenseNoticeKind;
  /** When validity ends (expiring_soon) or ended (expired): with the customer and kind, the episode. */
  ends_at: Date;
  subscription_id: string | null;
  created_at: Date;
}
export type LicenseNoticeInsert = Omit<LicenseNoticeRow, 'created_at'> & { created_at?: Sql<Date> };

// customer_entitlement_overrides, usage_threshold_crossings (20261207050000)
export interface EntitlementOverridesRow {
  customer_id: string;
  terms: OverrideTerms;
  note: string | null;
  expires_at: Date | null;
  expiry_announced_at: Date | null;
  created_at: Date;
  updated_at: Date;
}
export type EntitlementOverridesInsert = Omit<EntitlementOverridesRow, 'terms' | 'created_at' | 'updated_at' | 'expiry_announced_at'> & {
  terms: JsonText;
  created_at?: Sql<Date>;
  updated_at?: Sql<Date>;
  expiry_announced_at?: Date | null;
};
export type EntitlementOverridesUpdate = Partial<Omit<EntitlementOverridesRow, 'customer_id' | 'terms' | 'updated_at'>> & {
  terms?: JsonText;
  updated_at?: Sql<Date>;
};

export type ThresholdCrossingKind = 'threshold' | 'exhausted';
export interface ThresholdCrossingRow {
  customer_id: string;
  metric: string;
  period_start: Date;
  period_end: Date;
  /** bigint: read as a string. */
  allowance: string;
  kind: ThresholdCrossingKind;
  percent: number;
  /** numeric: read as a string. */
  quantity: string;
  event_id: string | null;
  created_at: Date;
}
export type ThresholdCrossingInsert = Omit<ThresholdCrossingRow, 'created_at' | 'allowance'> & { allowance: number | string; created_at?: Sql<Date> };

// invoices (20261207060000)
export type InvoiceStatus = 'draft' | 'open' | 'paid' | 'void' | 'uncollectible';
export interface InvoiceRow {
  id: string;
  customer_id: string;
  stripe_invoice_id: string;
  subscription_id: string | null;
  stripe_subscription_id: string | null;
  number: string | null;
  status: InvoiceStatus;
  currency: string;
  /** bigint columns: read as strings. */
  amount_due: string;
  amount_paid: string;
  amount_remaining: string;
  subtotal: string;
  tax: string;
  total: string;
  period_start: Date | null;
  period_end: Date | null;
  due_date: Date | null;
  hosted_invoice_url: string | null;
  invoice_pdf: string | null;
  /** jsonb: dates as ISO strings. */
  lines: {
    description: string | null;
    quantity: number | null;
    amount: number;
    price: string | null;
    metric: string | null;
    period: { start: string | null; end: string | null };
  }[];
  stripe_created_at: Date;
  finalized_at: Date | null;
  paid_at: Date | null;
  voided_at: Date | null;
  marked_uncollectible_at: Date | null;
  stripe_state_at: Date;
  created_at: Date;
  updated_at: Date;
}
export type InvoiceInsert = Omit<
  InvoiceRow,
  'amount_due' | 'amount_paid' | 'amount_remaining' | 'subtotal' | 'tax' | 'total' | 'lines' | 'created_at' | 'updated_at'
> & {
  amount_due: number;
  amount_paid: number;
  amount_remaining: number;
  subtotal: number;
  tax: number;
  total: number;
  lines: JsonText;
  created_at?: Sql<Date>;
  updated_at?: Sql<Date>;
};
/** Its customer and its Stripe invoice never change. */
export type InvoiceUpdate = Partial<Omit<InvoiceInsert, 'id' | 'customer_id' | 'stripe_invoice_id' | 'created_at'>>;

// usage_archives (20261208000200)
export interface UsageArchiveRow {
  month: string;
  partition: string;
  rows: string | null;
  bytes: string | null;
  sha256: string | null;
  file: string | null;
  archived_at: Date | null;
  verified_at: Date | null;
  dropping_at: Date | null;
  dropped_at: Date | null;
  restored_at: Date | null;
  keep_until: Date | null;
}
export type UsageArchiveInsert = Omit<UsageArchiveRow, 'rows' | 'bytes'> & { rows: number | null; bytes: number | null };
export type UsageArchiveUpdate = Partial<Omit<UsageArchiveInsert, 'month'>>;

// console_sessions (20261209000000)
export type ConsoleSessionEnd = 'sign_out' | 'expired' | 'token_removed' | 'replaced';
export interface ConsoleSessionRow {
  /** SHA-256 of the cookie's id: the id itself is never stored. */
  id_hash: Buffer;
  token_fingerprint: string;
  created_at: Date;
  last_seen_at: Date;
  expires_at: Date;
  revoked_at: Date | null;
  revoked_reason: ConsoleSessionEnd | null;
  ip: string | null;
  user_agent: string | null;
}
export type ConsoleSessionUpdate = Partial<Pick<ConsoleSessionRow, 'last_seen_at' | 'revoked_at' | 'revoked_reason'>>;

declare module 'knex/types/tables' {
  interface Tables {
    customers: Knex.CompositeTableType<CustomerRow, CustomerInsert, CustomerUpdate>;
    api_keys: Knex.CompositeTableType<ApiKeyRow, ApiKeyInsert, ApiKeyUpdate>;
    audit_log: Knex.CompositeTableType<AuditLogRow, AuditLogInsert, AuditLogUpdate>;
    usage_events: Knex.CompositeTableType<UsageEventRow, UsageEventInsert, UsageEventUpdate>;
    usage_outbox: Knex.CompositeTableType<UsageOutboxRow, UsageOutboxInsert, UsageOutboxUpdate>;
    usage_daily: Knex.CompositeTableType<UsageDailyRow, UsageDailyInsert, UsageDailyUpdate>;
    plans: Knex.CompositeTableType<PlanRow, PlanInsert, PlanUpdate>;
    subscriptions: Knex.CompositeTableType<SubscriptionRow, SubscriptionInsert, SubscriptionUpdate>;
    stripe_events: Knex.CompositeTableType<StripeEventRow, StripeEventInsert, StripeEventUpdate>;
    license_activations: Knex.CompositeTableType<ActivationRow, ActivationInsert, ActivationUpdate>;
    events: Knex.CompositeTableType<EventRow, EventInsert, never>;
    webhook_endpoints: Knex.CompositeTableType<WebhookEndpointRow, WebhookEndpointInsert, WebhookEndpointUpdate>;
    webhook_endpoint_secrets: Knex.CompositeTableType<WebhookEndpointSecretRow, WebhookEndpointSecretInsert, WebhookEndpointSecretUpdate>;
    webhook_deliveries: Knex.CompositeTableType<WebhookDeliveryRow, WebhookDeliveryInsert, WebhookDeliveryUpdate>;
    webhook_attempts: Knex.CompositeTableType<WebhookAttemptRow, WebhookAttemptInsert, WebhookAttemptUpdate>;
    license_notices: Knex.CompositeTableType<LicenseNoticeRow, LicenseNoticeInsert, never>;
    customer_entitlement_overrides: Knex.CompositeTableType<EntitlementOverridesRow, EntitlementOverridesInsert, EntitlementOverridesUpdate>;
    usage_threshold_crossings: Knex.CompositeTableType<ThresholdCrossingRow, ThresholdCrossingInsert, never>;
    invoices: Knex.CompositeTableType<InvoiceRow, InvoiceInsert, InvoiceUpdate>;
    usage_bundles: Knex.CompositeTableType<UsageBundleRow, UsageBundleInsert, never>;
    usage_true_ups: Knex.CompositeTableType<UsageTrueUpRow, UsageTrueUpInsert, UsageTrueUpUpdate>;
    usage_archives: Knex.CompositeTableType<UsageArchiveRow, UsageArchiveInsert, UsageArchiveUpdate>;
    console_sessions: Knex.CompositeTableType<ConsoleSessionRow, ConsoleSessionRow, ConsoleSessionUpdate>;
  }
}
