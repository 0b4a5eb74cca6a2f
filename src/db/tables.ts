/** Row shapes as stored. Repositories map these to camelCase domain objects in one place. */
export interface CustomerRow {
  id: string;
  email: string;
  company_name: string;
  stripe_customer_id: string | null;
  status: 'active' | 'deleted';
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
}

export interface ApiKeyRow {
  id: string;
  customer_id: string;
  name: string | null;
  secret_hash: string;
  start: string;
  created_at: Date;
  last_used_at: Date | null;
  expires_at: Date | null;
  revoked_at: Date | null;
}

export type AuditActor = 'admin' | 'customer' | 'stripe' | 'system';
export type AuditOutcome = 'success' | 'failure' | 'denied';

export interface AuditLogRow {
  id: string;
  at: Date;
  actor: AuditActor;
  actor_id: string | null;
  action: string;
  outcome: AuditOutcome;
  target_type: string | null;
  target_id: string | null;
  ip: string | null;
  request_id: string | null;
  client_request_id: string | null;
  details: Record<string, unknown>;
}
