import type { RequestHandler } from 'express';

/**
 * Middlewares run in order as one handler: express's router walks its own list of layers for each
 * one (a dispatch, a try/catch and a promise check apiece); here that is one call. A step that
 * throws, rejects or passes an error hands it to express's error handling, as a layer would; a
 * step that calls next() with nothing passes on to the next step, and after the last one to
 * whatever express has next.
 */
export function compose(steps: readonly RequestHandler[]): RequestHandler {
  return (req, res, done) => {
    let i = 0;
    const fail = (err: unknown) => done(err ?? new Error('Rejected promise'));
    const next = (err?: unknown): void => {
      if (err !== undefined && err !== null) return done(err);
      const step = steps[i++];
      if (!step) return done();
      try {
        const ret: unknown = step(req, res, next);
        if (ret instanceof Promise) ret.then(undefined, fail);
      } catch (e) {
        done(e);
      }
    };
    next();
  };
}
