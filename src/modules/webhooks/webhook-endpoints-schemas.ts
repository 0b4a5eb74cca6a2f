import { z } from 'zod';
import { iso, text } from '../../http/common-schemas';
import { id, nullableTimestamp, obj, page, timestamp } from '../../http/response-schemas';
import { parseDuration } from '../../lib/duration';
import { paginationQuery } from '../../lib/pagination';
import { EVENT_FILTERS } from '../events/event-types';
import type { WebhookEndpoint } from './webhook-endpoints-repository';
import { MAX_ROTATION_GRACE_SECONDS } from './webhook-endpoints-service';

/** Checked here for its form; the service checks where it points (request forgery, DNS). */
const url = z.string().max(2048, 'must be at most 2048 characters');

const events = z
  .array(z.enum(EVENT_FILTERS as [string, ...string[]]))
  .min(1, 'must name at least one event type, `<object>.*` or `*`')
  .max(50, 'must name at most 50 filters')
  .refine((list) => new Set(list).size === list.length, 'must not repeat a filter');

const description = text(500);

export const createWebhookEndpointBody = z.strictObject({
  url,
  events,
  description: description.optional(),
});

export const updateWebhookEndpointBody = z
  .strictObject({
    url: url.optional(),
    events: events.optional(),
    description: description.nullable().optional(),
    disabled: z.boolean().optional(),
  })
  .refine((b) => Object.values(b).some((v) => v !== undefined), { message: 'give at least one of url, events, description, disabled' });

/** 0s (the old secret stops at once) up to 7d, in seconds. */
const gracePeriod = z
  .string()
  .transform((v, ctx) => {
    const seconds = /^0+[dhms]?$/.test(v.trim()) ? 0 : parseDuration(v, { seconds: true });
    if (seconds === null || seconds > MAX_ROTATION_GRACE_SECONDS) {
      ctx.addIssue({ code: 'custom', message: 'must be a duration from 0s to 7d, like 0s, 30m, 24h or 7d' });
      return z.NEVER;
    }
    return seconds;
  })
  .meta({ description: 'How long the previous secret keeps signing beside the new one: 0s (stops at once) to 7d; default 24h', example: '24h' });

export const rotateSecretBody = z.strictObject({ grace_period: gracePeriod.optional() });

export const listWebhookEndpointsQuery = z.strictObject({ ...paginationQuery });

export const webhookEndpointJson = (e: WebhookEndpoint) => ({
  id: e.id,
  url: e.url,
  events: e.events,
  description: e.description,
  disabled: e.disabled,
  disabled_reason: e.disabledReason,
  disabled_at: iso(e.disabledAt),
  failing_since: iso(e.failingSince),
  last_success_at: iso(e.lastSuccessAt),
  created_at: iso(e.createdAt),
  updated_at: iso(e.updatedAt),
});

const webhookEndpoint = obj({
  id,
  url: z.string(),
  events: z.array(z.string()),
  description: z.string().nullable(),
  disabled: z.boolean(),
  disabled_reason: z.enum(['admin', 'failing']).nullable(),
  disabled_at: nullableTimestamp,
  failing_since: nullableTimestamp,
  last_success_at: nullableTimestamp,
  created_at: timestamp,
  updated_at: timestamp,
});

const secret = z.string().meta({ description: 'The signing secret (whsec_…), shown this once and never again' });

export const createdWebhookEndpointResponse = obj({ webhook_endpoint: webhookEndpoint, secret });
export const rotatedSecretResponse = obj({
  webhook_endpoint: webhookEndpoint,
  secret,
  previous_secret_expires_at: nullableTimestamp,
});
export const webhookEndpointResponse = obj({ webhook_endpoint: webhookEndpoint });
export const webhookEndpointsResponse = page(webhookEndpoint);
