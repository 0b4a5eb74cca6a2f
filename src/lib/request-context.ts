import type { AuditActor } from '../db/tables';

/**
 * Who is acting and where the request came from. Routes build it from the request;
 * services take it as a plain value and never see req/res.
 */
export interface ActorContext {
  actor: AuditActor;
  actorId: string | null;
  ip: string | null;
  /** Ours, always. */
  requestId: string | null;
  /** The client's X-Request-Id when it was sane, for correlation only (absent: none). */
  clientRequestId?: string | null;
}

export const systemContext = (requestId: string | null = null): ActorContext => ({
  actor: 'system',
  actorId: null,
  ip: null,
  requestId,
  clientRequestId: null,
});
