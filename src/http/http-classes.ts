import http from 'node:http';
import type { Socket } from 'node:net';
import type { Express } from 'express';

type Constructor<T> = new (...args: never[]) => T;

/**
 * The classes node makes each request and response from, for express's app.
 *
 * express gives every request and response another prototype (Object.setPrototypeOf) and then
 * adds a dozen properties to each. V8 cannot reuse hidden classes for an object whose prototype
 * was swapped, so each of those additions builds a new one. Objects made from these classes have
 * express's prototypes from the start: the swap changes nothing and the additions reuse cached
 * hidden classes. Why, what it saves (measured) and when to delete it:
 * docs/decisions/request-classes.md.
 */
export function httpClassesFor(app: Express): { IncomingMessage: typeof http.IncomingMessage; ServerResponse: typeof http.ServerResponse } {
  // Reflect.construct runs node's constructor on an object whose prototype is new.target's
  // (express's): it works whether node's constructors are plain functions, as in Node 20, or
  // classes, which cannot be called with another `this`.
  const { IncomingMessage, ServerResponse } = http;
  function BillingRequest(this: unknown, socket: Socket): http.IncomingMessage {
    return Reflect.construct(IncomingMessage, [socket], new.target ?? BillingRequest) as http.IncomingMessage;
  }
  BillingRequest.prototype = app.request;

  function BillingResponse(this: unknown, req: http.IncomingMessage, options?: object): http.ServerResponse {
    return Reflect.construct(ServerResponse, [req, options], new.target ?? BillingResponse) as http.ServerResponse;
  }
  BillingResponse.prototype = app.response;

  return {
    IncomingMessage: BillingRequest as unknown as Constructor<http.IncomingMessage> as typeof http.IncomingMessage,
    ServerResponse: BillingResponse as unknown as Constructor<http.ServerResponse> as typeof http.ServerResponse,
  };
}

/** The HTTP server for an app, with the classes above (app.listen would use node's own). */
export function createHttpServer(app: Express): http.Server {
  return http.createServer(httpClassesFor(app), app);
}
