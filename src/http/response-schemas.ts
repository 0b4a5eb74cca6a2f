import { z } from 'zod';
import { isoDateTime } from './common-schemas';

/**
 * What every response schema is built from. Each module declares its own answers in its
 * `<name>-schemas.ts`; they are documented in the OpenAPI document and checked against real
 * responses by the tests. Strict: a field added to a response without being documented fails.
 */
export const timestamp = isoDateTime();
export const nullableTimestamp = timestamp.nullable();
export const id = z.string();
export const obj = z.strictObject;
export const list = <T extends z.ZodType>(item: T) => obj({ data: z.array(item) });
export const page = <T extends z.ZodType>(item: T) => obj({ data: z.array(item), next_cursor: z.string().nullable() });

/** A JSON answer: its schema and what it means. */
export const json = <T extends z.ZodType>(schema: T, description: string) => ({ description, content: { 'application/json': schema } });

/** The OpenAPI document itself (GET /openapi.json). */
export const openapiResponse = z.looseObject({ openapi: z.literal('3.1.0'), paths: z.record(z.string(), z.unknown()) });
