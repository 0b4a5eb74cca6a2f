import type { Knex } from 'knex';
import type { WebhookEndpointDisabledReason, WebhookEndpointRow } from '../../db/tables';

export interface WebhookEndpoint {
  id: string;
  url: string;
  events: string[];
  description: string | null;
  disabled: boolean;
  disabledReason: WebhookEndpointDisabledReason | null;
  disabledAt: Date | null;
  failingSince: Date | null;
  lastSuccessAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface WebhookEndpointPatch {
  url?: string;
  events?: string[];
  description?: string | null;
  /** true: disabled by an admin (now); false: enabled, its failure record cleared. */
  disabled?: boolean;
}

/** A signing secret as stored: sealed, never the secret itself. */
export interface SealedSecret {
  id: string;
  endpointId: string;
  ciphertext: string;
  createdAt: Date;
  expiresAt: Date | null;
}

/** A row as the service and the API see it (the delivery engine maps the endpoints it disables with it too). */
export const toEndpoint = (r: WebhookEndpointRow): WebhookEndpoint => ({
  id: r.id,
  url: r.url,
  events: r.events,
  description: r.description,
  disabled: r.disabled,
  disabledReason: r.disabled_reason,
  disabledAt: r.disabled_at,
  failingSince: r.failing_since,
  lastSuccessAt: r.last_success_at,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export function createWebhookEndpointsRepository() {
  return {
    async insert(db: Knex, e: { id: string; url: string; events: string[]; description: string | null }): Promise<WebhookEndpoint> {
      const [row] = await db('webhook_endpoints').insert(e).returning('*');
      return toEndpoint(row!);
    },

    async findById(db: Knex, id: string, opts: { forUpdate?: boolean } = {}): Promise<WebhookEndpoint | null> {
      const q = db('webhook_endpoints').where({ id }).first();
      if (opts.forUpdate) q.forUpdate();
      const row = await q;
      return row ? toEndpoint(row) : null;
    },

    /** Newest first (ids are UUIDv7). */
    async list(db: Knex, f: { beforeId?: string; limit: number }): Promise<WebhookEndpoint[]> {
      const q = db('webhook_endpoints').select('*').orderBy('id', 'desc').limit(f.limit);
      if (f.beforeId) q.where('id', '<', f.beforeId);
      return (await q).map(toEndpoint);
    },

    async update(db: Knex, id: string, patch: WebhookEndpointPatch, current: WebhookEndpoint): Promise<WebhookEndpoint> {
      const disabling = patch.disabled === true && !current.disabled;
      const enabling = patch.disabled === false;
      const [row] = await db('webhook_endpoints')
        .where({ id })
        .update({
          ...(patch.url !== undefined ? { url: patch.url } : {}),
          ...(patch.events !== undefined ? { events: patch.events } : {}),
          ...(patch.description !== undefined ? { description: patch.description } : {}),
          ...(disabling ? { disabled: true, disabled_reason: 'admin' as const, disabled_at: db.fn.now() } : {}),
          ...(enabling ? { disabled: false, disabled_reason: null, disabled_at: null, failing_since: null } : {}),
          updated_at: db.fn.now(),
        })
        .returning('*');
      return toEndpoint(row!);
    },

    /** Deletes the endpoint; its secrets, deliveries and attempts go with it (cascade). */
    async delete(db: Knex, id: string): Promise<boolean> {
      return (await db('webhook_endpoints').where({ id }).delete()) > 0;
    },

    async insertSecret(db: Knex, s: { id: string; endpointId: string; ciphertext: string }): Promise<void> {
      await db('webhook_endpoint_secrets').insert({ id: s.id, endpoint_id: s.endpointId, ciphertext: s.ciphertext });
    },

    /**
     * The secrets that sign deliveries to these endpoints at `at`, sealed: per endpoint the current one
     * (no expiry) first, then rotated-out ones whose grace has not ended, newest first. The one read
     * of this rule: the endpoints service and the delivery engine both use it.
     */
    async activeSecrets(db: Knex, endpointIds: readonly string[], at: Date): Promise<SealedSecret[]> {
      if (endpointIds.length === 0) return [];
      const rows = await db('webhook_endpoint_secrets')
        .whereIn('endpoint_id', [...new Set(endpointIds)])
        .where((w) => void w.whereNull('expires_at').orWhere('expires_at', '>', at))
        .orderByRaw('endpoint_id, expires_at desc nulls first, created_at desc');
      return rows.map((r) => ({ id: r.id, endpointId: r.endpoint_id, ciphertext: r.ciphertext, createdAt: r.created_at, expiresAt: r.expires_at }));
    },

    /** The current secret stops being current: it keeps signing until `expiresAt`. Returns how many (0 or 1). */
    async retireCurrentSecret(db: Knex, endpointId: string, expiresAt: Date): Promise<number> {
      return db('webhook_endpoint_secrets').where({ endpoint_id: endpointId }).whereNull('expires_at').update({ expires_at: expiresAt });
    },

    /** Rotated-out secrets whose grace is over: they sign nothing any more. */
    async deleteExpiredSecrets(db: Knex, endpointId: string, at: Date): Promise<number> {
      return db('webhook_endpoint_secrets').where({ endpoint_id: endpointId }).where('expires_at', '<=', at).delete();
    },
  };
}

export type WebhookEndpointsRepository = ReturnType<typeof createWebhookEndpointsRepository>;
