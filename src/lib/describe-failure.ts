import { inspect } from 'node:util';

/** A start-up failure in words: the error, then each cause under it; never a bare `undefined`. */
export function describeFailure(err: unknown): string {
  const lines: string[] = [];
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    if (e instanceof Error) {
      lines.push(depth === 0 ? (e.stack ?? e.message) : `caused by: ${e.stack ?? e.message}`);
      e = e.cause;
    } else {
      lines.push(depth === 0 ? inspect(e) : `caused by: ${inspect(e)}`);
      break;
    }
  }
  return lines.length ? lines.join('\n') : 'an error without a message was thrown (run with LOG_LEVEL=trace for the details)';
}
