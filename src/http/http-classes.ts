import http from 'node:http';
import type { Socket } from 'node:net';
import type { Express } from 'express';

type Constructor<T> = new (...args: never[]) => T;

/**
 * The classes node makes each request and response from, for express's app.
 *
 * express gives every request and response another prototype (Object.setPrototypeOf) and then
 * adds a dozen properties to each. V8 cannot reuse hidden classes for an object whose prototype
 * was swapped, so each of those additions builds a new one: on this Node about 3 us apiece, some
 * 40 us a request before any work is done. Objects made from these classes have express's
 * prototypes from the start: the swap changes nothing and the additions reuse cached hidden
 * classes. A bare Express app answering from a setImmediate spent 160-190 us of CPU a request
 * with node's own classes and 55-65 us with these (autocannon, 50 connections, this machine).
 */
export function httpClassesFor(app: Express): { IncomingMessage: typeof http.IncomingMessage; ServerResponse: typeof http.ServerResponse } {
  // node's own constructors are plain functions (not classes): they can run on an object made here.
  const IncomingMessage = http.IncomingMessage as unknown as (this: object, socket: Socket) => void;
  const ServerResponse = http.ServerResponse as unknown as (this: object, req: http.IncomingMessage, options?: object) => void;

  function BillingRequest(this: object, socket: Socket) {
    IncomingMessage.call(this, socket);
  }
  BillingRequest.prototype = app.request;

  function BillingResponse(this: object, req: http.IncomingMessage, options?: object) {
    ServerResponse.call(this, req, options);
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
