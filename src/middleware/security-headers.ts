import type { RequestHandler } from 'express';
import helmet from 'helmet';

/**
 * helmet's headers, computed once at startup and set in one step per request. helmet() is a chain
 * of a dozen small middlewares that each set (or remove) one header, the same for every request:
 * run it once against a recording response and replay what it did.
 */
export function securityHeaders(options?: Parameters<typeof helmet>[0]): RequestHandler {
  const set = new Map<string, string | number | readonly string[]>();
  const removed = new Set<string>();
  const recorder = {
    setHeader: (name: string, value: string | number | readonly string[]) => void (set.set(name, value), removed.delete(name.toLowerCase())),
    removeHeader: (name: string) => void (set.delete(name), removed.add(name.toLowerCase())),
    getHeader: (name: string) => set.get(name),
  };
  let ran = false;
  helmet(options)({ headers: {}, method: 'GET', url: '/' } as never, recorder as never, () => void (ran = true));
  if (!ran) throw new Error('helmet did not finish synchronously: its headers cannot be computed once');
  const headers = new Map([...set].map(([k, v]) => [k, Array.isArray(v) ? [...(v as string[])] : String(v)] as const));
  return (_req, res, next) => {
    res.setHeaders(headers);
    for (const name of removed) res.removeHeader(name);
    next();
  };
}
