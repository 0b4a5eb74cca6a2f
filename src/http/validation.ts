import { z } from 'zod';
import { ValidationError, type FieldProblem } from '../errors/app-error';

type Issue = z.core.$ZodIssue;

/** How badly an option of a union missed at its top level: unknown or missing fields there. */
const rootMisses = (issues: readonly Issue[]) =>
  issues.filter((i) => i.path.length <= 1 && (i.code === 'unrecognized_keys' || (i.code === 'invalid_type' && i.message.endsWith('received undefined'))))
    .length;

function flatten(issues: readonly Issue[], prefix: PropertyKey[] = []): FieldProblem[] {
  return issues.flatMap((i): FieldProblem[] => {
    // A union that matched no option: report the option the input was closest to, not every option's complaints.
    if (i.code === 'invalid_union' && i.errors.length > 0) {
      const closest = i.errors.reduce((best, option) => (rootMisses(option) < rootMisses(best) ? option : best));
      return flatten(closest, [...prefix, ...i.path]);
    }
    const path = [...prefix, ...i.path];
    // An item of a list (a batch's events) is also named by its index, for callers that resend only it.
    const index = path.find((p): p is number => typeof p === 'number');
    return [
      {
        path: path.map(String).join('.'),
        message: i.code === 'unrecognized_keys' ? `unknown field(s): ${i.keys.join(', ')}` : i.message,
        ...(index !== undefined ? { index } : {}),
      },
    ];
  });
}

export function problemsOf(error: z.ZodError): FieldProblem[] {
  return flatten(error.issues);
}

/** Validates one part of a request at the edge; the message names the part, details name each field. */
export function parseInput<T extends z.ZodType>(schema: T, value: unknown, part: 'body' | 'query' | 'headers'): z.output<T> {
  const result = schema.safeParse(value);
  if (!result.success) throw new ValidationError(`Invalid request ${part}`, problemsOf(result.error));
  return result.data;
}
