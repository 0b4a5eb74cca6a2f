import { z } from 'zod';
import { obj, timestamp } from '../../http/response-schemas';

export const webhookResponse = obj({
  received: z.literal(true),
  event_id: z.string(),
  type: z.string(),
  result: z.enum(['processed', 'duplicate', 'ignored']),
});
export const webhooksResponse = obj({
  processed: z.number().int(),
  failing: z.number().int(),
  failing_events: z.array(
    obj({
      id: z.string(),
      type: z.string(),
      object_id: z.string().nullable(),
      attempts: z.number().int(),
      last_error: z.string().nullable(),
      received_at: timestamp,
    }),
  ),
});
