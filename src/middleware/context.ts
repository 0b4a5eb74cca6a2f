import type { Request } from 'express';
import type { ActorContext } from '../lib/request-context';

/** The actor context of a request, as set by whichever authentication ran. */
export function contextOf(req: Request): ActorContext {
  const actor = (req.res?.locals.actor as Pick<ActorContext, 'actor' | 'actorId'> | undefined) ?? { actor: 'system', actorId: null };
  return { ...actor, ip: req.ip ?? null, requestId: String(req.id), clientRequestId: req.clientRequestId ?? null };
}
