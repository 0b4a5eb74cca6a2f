import { z } from 'zod';
import { ValidationError, type FieldProblem } from '../errors/app-error';

export function problemsOf(error: z.ZodError): FieldProblem[] {
  return error.issues.map((i) => ({
    path: i.path.map(String).join('.'),
    message: i.code === 'unrecognized_keys' ? `unknown field(s): ${i.keys.join(', ')}` : i.message,
  }));
}

/** Validates one part of a request at the edge; the message names the part, details name each field. */
export function parseInput<T extends z.ZodType>(schema: T, value: unknown, part: 'body' | 'query'): z.output<T> {
  const result = schema.safeParse(value);
  if (!result.success) throw new ValidationError(`Invalid request ${part}`, problemsOf(result.error));
  return result.data;
}
