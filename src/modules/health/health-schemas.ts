import { z } from 'zod';
import { obj } from '../../http/response-schemas';

export const healthResponse = obj({ status: z.literal('ok'), uptime_seconds: z.number() });
export const readyResponse = obj({ status: z.literal('ready'), checks: obj({ database: z.literal('ok'), migrations: z.literal('current') }) });
