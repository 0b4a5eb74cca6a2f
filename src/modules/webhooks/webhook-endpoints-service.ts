import { randomBytes } from 'node:crypto';
import dns from 'node:dns';
import type { Knex } from 'knex';
import { NotFoundError, ValidationError } from '../../errors/app-error';
import { uuidv7 } from '../../lib/ids';
import type { ActorContext } from '../../lib/request-context';
import type { AuditService } from '../audit/audit-service';
import { destinationProblem, type DestinationPolicy } from './destination-policy';
import type { SecretBox } from './secret-box';
import type { WebhookEndpoint, WebhookEndpointPatch, WebhookEndpointsRepository } from './webhook-endpoints-repository';

/**
 * Webhook endpoints: where events go, and the secrets their deliveries are signed with. A secret is
 * made here, answered once (create, rotate) and stored only sealed (secret-box.ts, under
 * WEBHOOK_SECRETS_KEY); the delivery engine opens it through signingSecrets(). Audit rows name the
 * endpoint, its fields and the secret's id, never the secret; the URL in them is cut before its query
 * (receivers often carry a token there).
 */
export interface WebhookEndpointsServiceDeps {
  db: Knex;
  repo: WebhookEndpointsRepository;
  audit: AuditService;
  secretBox: SecretBox;
  policy: DestinationPolicy;
  /** DNS for the check at creation (tests pass their own). */
  lookup?: typeof dns.promises.lookup;
  now?: () => number;
}

/** The Standard Webhooks form: whsec_ and the base64 of 32 random bytes. */
export const newSigningSecret = (): string => `whsec_${randomBytes(32).toString('base64')}`;

/** The longest grace a rotated-out secret may get. */
export const MAX_ROTATION_GRACE_SECONDS = 7 * 86_400;
export const DEFAULT_ROTATION_GRACE_SECONDS = 86_400;

function auditUrl(text: string): string {
  const u = new URL(text);
  return `${u.origin}${u.pathname}${u.search ? '?…' : ''}`;
}

export function createWebhookEndpointsService({
  db,
  repo,
  audit,
  secretBox,
  policy,
  lookup = dns.promises.lookup,
  now = Date.now,
}: WebhookEndpointsServiceDeps) {
  /** Refuses a URL that may not be a destination (request forgery), with why, before any write. */
  async function checkUrl(url: string): Promise<void> {
    const problem = await destinationProblem(url, policy, lookup);
    if (problem) throw new ValidationError(`Invalid webhook URL: it ${problem}`, [{ path: 'url', message: problem }]);
  }

  async function get(id: string): Promise<WebhookEndpoint> {
    const endpoint = await repo.findById(db, id);
    if (!endpoint) throw new NotFoundError('Webhook endpoint');
    return endpoint;
  }

  async function lockEndpoint(trx: Knex, id: string): Promise<WebhookEndpoint> {
    const endpoint = await repo.findById(trx, id, { forUpdate: true });
    if (!endpoint) throw new NotFoundError('Webhook endpoint');
    return endpoint;
  }

  async function addSecret(trx: Knex, endpointId: string): Promise<{ secret: string; secretId: string }> {
    const secret = newSigningSecret();
    const secretId = uuidv7();
    await repo.insertSecret(trx, { id: secretId, endpointId, ciphertext: secretBox.seal(secret, endpointId) });
    return { secret, secretId };
  }

  return {
    get,

    list(filter: { beforeId?: string; limit: number }): Promise<WebhookEndpoint[]> {
      return repo.list(db, filter);
    },

    /** A new endpoint and its first signing secret, returned this once. */
    async create(ctx: ActorContext, input: { url: string; events: string[]; description: string | null }) {
      await checkUrl(input.url);
      const id = uuidv7();
      return db.transaction(async (trx) => {
        const endpoint = await repo.insert(trx, { id, url: input.url, events: input.events, description: input.description });
        const { secret, secretId } = await addSecret(trx, id);
        await audit.record(trx, ctx, {
          action: 'webhook_endpoint.create',
          outcome: 'success',
          targetType: 'webhook_endpoint',
          targetId: id,
          details: { url: auditUrl(input.url), events: input.events, secret_id: secretId },
        });
        return { endpoint, secret };
      });
    },

    async update(ctx: ActorContext, id: string, patch: WebhookEndpointPatch): Promise<WebhookEndpoint> {
      if (patch.url !== undefined) await checkUrl(patch.url);
      return db.transaction(async (trx) => {
        const current = await lockEndpoint(trx, id);
        const updated = await repo.update(trx, id, patch, current);
        await audit.record(trx, ctx, {
          action: 'webhook_endpoint.update',
          outcome: 'success',
          targetType: 'webhook_endpoint',
          targetId: id,
          details: {
            fields: Object.keys(patch).filter((f) => patch[f as keyof WebhookEndpointPatch] !== undefined),
            ...(patch.url !== undefined ? { url: auditUrl(patch.url) } : {}),
            ...(patch.events !== undefined ? { events: patch.events } : {}),
            ...(patch.disabled !== undefined ? { disabled: patch.disabled, was_disabled: current.disabled } : {}),
          },
        });
        return updated;
      });
    },

    /** Deletes the endpoint with its secrets, deliveries and attempts. */
    async remove(ctx: ActorContext, id: string): Promise<void> {
      await db.transaction(async (trx) => {
        const current = await lockEndpoint(trx, id);
        await repo.delete(trx, id);
        await audit.record(trx, ctx, {
          action: 'webhook_endpoint.delete',
          outcome: 'success',
          targetType: 'webhook_endpoint',
          targetId: id,
          details: { url: auditUrl(current.url) },
        });
      });
    },

    /**
     * A new current secret (returned this once). The one it replaces keeps signing beside it for
     * `graceSeconds` (0: it stops now), so receivers can switch without missing a delivery; secrets
     * whose grace is over are deleted.
     */
    async rotateSecret(ctx: ActorContext, id: string, graceSeconds: number) {
      return db.transaction(async (trx) => {
        const endpoint = await lockEndpoint(trx, id);
        const at = now();
        const previousExpiresAt = new Date(at + graceSeconds * 1000);
        const retired = await repo.retireCurrentSecret(trx, id, previousExpiresAt);
        const removed = await repo.deleteExpiredSecrets(trx, id, new Date(at));
        const { secret, secretId } = await addSecret(trx, id);
        await audit.record(trx, ctx, {
          action: 'webhook_endpoint.rotate_secret',
          outcome: 'success',
          targetType: 'webhook_endpoint',
          targetId: id,
          details: {
            secret_id: secretId,
            grace_period_seconds: graceSeconds,
            previous_expires_at: retired ? previousExpiresAt.toISOString() : null,
            expired_secrets_deleted: removed,
          },
        });
        return { endpoint, secret, previousExpiresAt: retired && graceSeconds > 0 ? previousExpiresAt : null };
      });
    },

    /**
     * For the delivery engine: the secrets a delivery to this endpoint is signed with now, opened:
     * the current one first, then rotated-out ones whose grace has not ended (one `v1,` signature
     * each). `db` may be a transaction.
     */
    async signingSecrets(conn: Knex, endpointId: string): Promise<string[]> {
      const sealed = await repo.activeSecrets(conn, [endpointId], new Date(now()));
      return sealed.map((s) => secretBox.open(s.ciphertext, endpointId));
    },
  };
}

export type WebhookEndpointsService = ReturnType<typeof createWebhookEndpointsService>;
