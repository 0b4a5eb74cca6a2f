import type { RequestHandler } from 'express';
import type { KeyVerifier } from '../modules/api-keys/key-verifier';
import { contextOf } from './context';

/** X-API-Key: the customer is taken from the verified key, never from the path or body. */
export function customerAuth(verifier: KeyVerifier): RequestHandler {
  return async (req, res, next) => {
    // A client that hangs up before its key is checked is counted, but no bcrypt runs for it.
    let gone = false;
    res.once('close', () => {
      if (!res.writableFinished) gone = true;
    });
    const principal = await verifier.verify(req.get('x-api-key'), contextOf(req), { clientGone: () => gone || req.socket.destroyed });
    res.locals.principal = principal;
    res.locals.actor = { actor: 'customer', actorId: principal.customerId };
    next();
  };
}
