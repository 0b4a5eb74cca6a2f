/**
 * Every event type the service writes (docs/WEBHOOKS.md describes each and its `data`). A closed
 * list: endpoint filters and the events list are validated against it.
 */
export const EVENT_TYPES = [
  'customer.created',
  'customer.updated',
  'customer.deleted',
  'customer.entitlements_updated',
  'customer.entitlements_expired',
  'api_key.created',
  'api_key.revoked',
  'api_key.rotated',
  'subscription.created',
  'subscription.updated',
  'subscription.canceled',
  'subscription.past_due',
  'invoice.payment_failed',
  'invoice.paid',
  'license.grace_started',
  'license.expired',
  'license.expiring_soon',
  'instance.activated',
  'instance.deactivated',
  'instance.released',
  'instance.limit_reached',
  'usage.forwarding_failed',
  'usage.threshold_crossed',
  'usage.allowance_exhausted',
  'usage.bundle_gap',
  'webhook_endpoint.disabled',
  'webhook_endpoint.test',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

/** What an endpoint may subscribe to: a type, every type of one object (`license.*`), or everything (`*`). */
export const EVENT_FILTERS: readonly string[] = ['*', ...new Set(EVENT_TYPES.map((t) => `${t.split('.')[0]}.*`)), ...EVENT_TYPES];

/**
 * SQL: whether an endpoint's filters (`filters`, a text[] column) take an event of type `type` (an SQL
 * expression): the type itself, `<object>.*` or `*`, by array overlap. Written once, for the fan-out
 * when an event is recorded and for a resend.
 */
export const filtersTakeSql = (filters: string, type: string): string => `${filters} && array['*', ${type}, split_part(${type}, '.', 1) || '.*']`;
