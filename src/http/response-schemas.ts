import { z } from 'zod';
import { isoDateTime } from './common-schemas';

/**
 * The shapes of successful responses, documented in the OpenAPI document and checked against real
 * responses by the tests. Strict: a field added to a response without being documented fails.
 */
const ts = isoDateTime();
const nts = ts.nullable();
const id = z.string();
const obj = z.strictObject;
const list = <T extends z.ZodType>(item: T) => obj({ data: z.array(item) });
const page = <T extends z.ZodType>(item: T) => obj({ data: z.array(item), next_cursor: z.string().nullable() });

export const customer = obj({
  id,
  email: z.string(),
  company_name: z.string(),
  status: z.enum(['active', 'deleted']),
  stripe_customer_id: z.string().nullable(),
  created_at: ts,
  updated_at: ts,
  deleted_at: nts,
});

export const apiKey = obj({
  id,
  customer_id: id,
  name: z.string().nullable(),
  start: z.string(),
  status: z.enum(['active', 'expired', 'revoked']),
  created_at: ts,
  last_used_at: nts,
  expires_at: nts,
  revoked_at: nts,
});

const auditEntry = obj({
  id,
  at: ts,
  actor: z.enum(['admin', 'customer', 'stripe', 'system']),
  actor_id: z.string().nullable(),
  action: z.string(),
  outcome: z.enum(['success', 'failure', 'denied']),
  target_type: z.string().nullable(),
  target_id: z.string().nullable(),
  ip: z.string().nullable(),
  request_id: z.string().nullable(),
  client_request_id: z.string().nullable(),
  details: z.record(z.string(), z.unknown()),
});

const usageEvent = obj({
  id,
  metric: z.string(),
  quantity: z.string(),
  occurred_at: ts,
  idempotency_key: z.string(),
  received_at: ts,
  replayed: z.boolean(),
});

const total = obj({
  customer_id: id.optional(),
  day: z.iso.date().optional(),
  metric: z.string().optional(),
  quantity: z.string(),
  events: z.number().int(),
});

const totals = obj({ customer_id: id, from: ts, to: ts, group_by: z.enum(['metric', 'day']), totals: z.array(total) });

const plan = obj({
  id,
  code: z.string(),
  name: z.string(),
  entitlements: obj({ features: z.array(z.string()), limits: z.record(z.string(), z.number().nullable()), seats: z.number().nullable().optional() }),
  stripe_price_id: z.string().nullable(),
  metered_prices: z.record(z.string(), z.string()),
  status: z.enum(['active', 'archived']),
  created_at: ts,
  updated_at: ts,
});

const subscription = obj({
  id,
  customer_id: id,
  plan: obj({ code: z.string(), name: z.string(), entitlements: plan.shape.entitlements }),
  status: z.enum(['incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due', 'canceled', 'unpaid', 'paused']),
  stripe_subscription_id: z.string().nullable(),
  current_period_start: nts,
  current_period_end: nts,
  cancel_at_period_end: z.boolean(),
  canceled_at: nts,
  trial_end: nts,
  created_at: ts,
  updated_at: ts,
});

/** A JSON answer: its schema and what it means. */
export const json = <T extends z.ZodType>(schema: T, description: string) => ({ description, content: { 'application/json': schema } });

export const responses = {
  health: obj({ status: z.literal('ok'), uptime_seconds: z.number() }),
  ready: obj({ status: z.literal('ready'), checks: obj({ database: z.literal('ok'), migrations: z.literal('current') }) }),
  createdCustomer: obj({ customer, api_key: z.string(), key: apiKey }),
  customer: obj({ customer }),
  customers: page(customer),
  me: obj({ customer, key: obj({ id }) }),
  issuedKey: obj({ api_key: z.string(), key: apiKey, ended_key_ids: z.array(id) }),
  keys: list(apiKey),
  rotatedKeys: obj({
    rotated: z.number().int(),
    grace_period_seconds: z.number().int(),
    keys: z.array(obj({ customer_id: id, api_key: z.string(), key: apiKey, ended_key_ids: z.array(id) })),
    skipped: z.array(obj({ customer_id: id, reason: z.enum(['not_found', 'deleted', 'too_many_keys']) })),
    next_cursor: z.string().nullable(),
  }),
  key: obj({ key: apiKey }),
  audit: page(auditEntry),
  usagePosted: z.union([
    obj({ event: usageEvent }),
    obj({ created: z.number().int(), replayed: z.number().int(), events: z.array(obj({ id, idempotency_key: z.string(), replayed: z.boolean() })) }),
  ]),
  totals,
  report: obj({ from: ts, to: ts, group_by: z.enum(['customer', 'day']), rows: z.array(total) }),
  forwarding: obj({
    stripe_enabled: z.boolean(),
    pending: z.number().int(),
    due: z.number().int(),
    failed: z.number().int(),
    local: z.number().int(),
    sent: z.number().int(),
    oldest_pending_at: nts,
    oldest_pending_age_seconds: z.number().nonnegative(),
    sent_last_minute: z.number().int(),
    events_per_second: z.number().nonnegative(),
    recent_failures: z.array(
      obj({
        id,
        customer_id: id,
        metric: z.string(),
        quantity: z.string(),
        occurred_at: ts,
        attempts: z.number().int(),
        last_error: z.string().nullable(),
        stripe_submission_id: id.nullable(),
      }),
    ),
  }),
  retried: obj({ requeued: z.number().int(), event_ids: z.array(id) }),
  plan: obj({ plan }),
  plans: list(plan),
  subscription: obj({ subscription }),
  subscriptions: list(subscription),
  webhook: obj({ received: z.literal(true), event_id: z.string(), type: z.string(), result: z.enum(['processed', 'duplicate', 'ignored']) }),
  webhooks: obj({
    processed: z.number().int(),
    failing: z.number().int(),
    failing_events: z.array(
      obj({
        id: z.string(),
        type: z.string(),
        object_id: z.string().nullable(),
        attempts: z.number().int(),
        last_error: z.string().nullable(),
        received_at: ts,
      }),
    ),
  }),
  reconciled: obj({
    stripe_enabled: z.boolean(),
    checked: z.number().int(),
    changes: z.array(
      obj({ subscription_id: id.nullable(), stripe_subscription_id: z.string(), change: z.string(), from: z.string().optional(), to: z.string().optional() }),
    ),
  }),
  openapi: z.looseObject({ openapi: z.literal('3.1.0'), paths: z.record(z.string(), z.unknown()) }),
} as const;
