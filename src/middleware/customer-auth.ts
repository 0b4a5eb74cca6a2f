import type { RequestHandler } from 'express';
import type { KeyVerifier } from '../modules/api-keys/key-verifier';
import { contextOf } from './context';

/** X-API-Key: the customer is taken from the verified key, never from the path or body. */
export function customerAuth(verifier: KeyVerifier): RequestHandler {
  return async (req, res, next) => {
    // A client that hangs up before its key is checked is counted, but no bcrypt runs for it: its
    // socket is destroyed once node has seen the hang-up (asked only on the way to bcrypt).
    const principal = await verifier.verify(req.get('x-api-key'), contextOf(req), { clientGone: () => req.socket.destroyed || res.destroyed });
    res.locals.principal = principal;
    res.locals.actor = { actor: 'customer', actorId: principal.customerId };
    next();
  };
}
