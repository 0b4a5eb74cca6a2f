import type { AuditActor } from '../db/tables';

/**
 * Who is acting and where the request came from. Routes build it from the request;
 * services take it as a plain value and never see req/res.
 */
export interface ActorContext {
  actor: AuditActor;
  actorId: string | null;
  ip: string | null;
  requestId: string | null;
}

export const systemContext = (requestId: string | null = null): ActorContext => ({
  actor: 'system',
  actorId: null,
  ip: null,
  requestId,
});
