import http from 'node:http';
import type { Express } from 'express';

interface HttpClasses {
  IncomingMessage: typeof http.IncomingMessage;
  ServerResponse: typeof http.ServerResponse;
}

const made = new WeakMap<Express, HttpClasses>();

/**
 * The classes node makes each request and response from, for express's app.
 *
 * express gives every request and response the app's prototypes (`Object.setPrototypeOf(req,
 * app.request)`) and then adds a dozen properties to each. V8 cannot reuse hidden classes for an
 * object whose prototype was swapped, so each of those additions builds a new one. Objects made
 * from these classes have the app's prototypes from the start: the swap changes nothing and the
 * additions reuse cached hidden classes. Why, what it saves (measured) and when to delete it:
 * docs/decisions/request-classes.md.
 *
 * They are subclasses of node's own, so construction goes through `super()` (V8's ordinary path
 * for a derived class, whose instances share one hidden class) and works whether node's
 * constructors are plain functions, as in Node 20, or classes. The app's prototypes become the
 * subclasses' prototypes: each is placed in front of the app's own and takes its place in
 * `app.request` / `app.response`, so what express sets is what the object already has.
 */
export function httpClassesFor(app: Express): HttpClasses {
  const known = made.get(app);
  if (known) return known;
  class BillingRequest extends http.IncomingMessage {}
  class BillingResponse extends http.ServerResponse {}
  Object.setPrototypeOf(BillingRequest.prototype, app.request);
  Object.setPrototypeOf(BillingResponse.prototype, app.response);
  app.request = BillingRequest.prototype as unknown as Express['request'];
  app.response = BillingResponse.prototype as unknown as Express['response'];
  const classes: HttpClasses = { IncomingMessage: BillingRequest, ServerResponse: BillingResponse as typeof http.ServerResponse };
  made.set(app, classes);
  return classes;
}

/** The HTTP server for an app, with the classes above (app.listen would use node's own). */
export function createHttpServer(app: Express): http.Server {
  return http.createServer(httpClassesFor(app), app);
}
