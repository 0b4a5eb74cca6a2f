/**
 * Air-gapped instances for tests: an instance key (Ed25519), its activation with that key, and usage
 * bundles signed with it (jose's CompactSign, the way the client package writes them), chained by
 * seq and `previous` as an instance exports them.
 */
import { createHash, generateKeyPairSync, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { CompactSign } from 'jose';
import request from 'supertest';
import type { CreatedCustomer } from './factories';
import type { TestApp } from './test-app';

export interface InstanceKey {
  privateKey: KeyObject;
  /** The public JWK an activation takes as `instance_key`. */
  jwk: { kty: 'OKP'; crv: 'Ed25519'; x: string };
  /** RFC 7638: the bundles' kid. */
  thumbprint: string;
}

export function instanceKey(): InstanceKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const { x } = publicKey.export({ format: 'jwk' }) as { x: string };
  const thumbprint = createHash('sha256')
    .update(JSON.stringify({ crv: 'Ed25519', kty: 'OKP', x }))
    .digest('base64url');
  return { privateKey, jwk: { kty: 'OKP', crv: 'Ed25519', x }, thumbprint };
}

export const newFingerprint = () => `fp-${randomBytes(8).toString('hex')}`;

/** Activates an instance with its key (the customer needs a license: a subscription). */
export async function activateWithKey(t: TestApp, c: CreatedCustomer, key: InstanceKey, fingerprint = newFingerprint()) {
  const res = await request(t.app).post('/api/licenses/activations').set('X-API-Key', c.apiKey).send({ fingerprint, instance_key: key.jwk });
  if (res.status !== 201 && res.status !== 200) throw new Error(`activateWithKey: ${res.status} ${JSON.stringify(res.body)}`);
  return { fingerprint, activation: res.body.activation };
}

export interface BundleEventInput {
  metric: string;
  quantity: number | string;
  occurred_at?: string;
  idempotency_key: string;
  [extra: string]: unknown;
}

/** `n` events, occurred `agoMs` before now (default now: never before a subscription just made), keys `<prefix>-<i>`. */
export function bundleEvents(n: number, opts: { prefix?: string; metric?: string; agoMs?: number; quantity?: number | string } = {}): BundleEventInput[] {
  const prefix = opts.prefix ?? `ev-${randomBytes(4).toString('hex')}`;
  const at = new Date(Date.now() - (opts.agoMs ?? 0)).toISOString();
  return Array.from({ length: n }, (_, i) => ({
    metric: opts.metric ?? 'api_calls',
    quantity: opts.quantity ?? i + 1,
    occurred_at: at,
    idempotency_key: `${prefix}-${i}`,
  }));
}

export interface BundlePayload {
  format: string;
  customer_id: string;
  fingerprint: string;
  bundle_id: string;
  seq: number;
  previous: string | null;
  created_at: string;
  events: unknown[];
  [extra: string]: unknown;
}

/** Signs any payload (an object is JSON-encoded; a string is signed as it is) under a header (default: the bundle's, with the key's kid). */
export async function signBundle(payload: object | string, key: InstanceKey, header: Record<string, unknown> = {}): Promise<string> {
  const bytes = new TextEncoder().encode(typeof payload === 'string' ? payload : JSON.stringify(payload));
  return new CompactSign(bytes).setProtectedHeader({ alg: 'EdDSA', typ: 'usage-bundle+jws', kid: key.thumbprint, ...header }).sign(key.privateKey);
}

/** base64url(SHA-256(the JWS text)). */
export const digestOf = (jws: string) => createHash('sha256').update(jws.trim()).digest('base64url');

/** A JWS's payload, decoded. */
export const payloadOf = <T = Record<string, unknown>>(jws: string): T => JSON.parse(Buffer.from(jws.split('.')[1]!, 'base64url').toString('utf8')) as T;

/**
 * An air-gapped instance of a customer: its key, its fingerprint, and the bundles it exports, seq 1,
 * 2, 3… each naming the digest of the one before.
 */
export class Instance {
  seq = 0;
  last: string | null = null;
  readonly bundleIds: string[] = [];

  constructor(
    readonly customer: CreatedCustomer,
    readonly key: InstanceKey = instanceKey(),
    readonly fingerprint: string = newFingerprint(),
  ) {}

  /** Activates it online with its key (its customer needs a subscription). */
  activate(t: TestApp) {
    return activateWithKey(t, this.customer, this.key, this.fingerprint);
  }

  /** The payload of its next bundle (not yet counted as exported). */
  nextPayload(events: unknown[], overrides: Partial<BundlePayload> = {}): BundlePayload {
    return {
      format: 'usage-bundle/1',
      customer_id: this.customer.id,
      fingerprint: this.fingerprint,
      bundle_id: randomUUID(),
      seq: this.seq + 1,
      previous: this.last,
      created_at: new Date().toISOString(),
      events,
      ...overrides,
    };
  }

  /** Exports its next bundle: signed, counted, and the one the following bundle names as `previous`. */
  async export(events: unknown[], overrides: Partial<BundlePayload> = {}): Promise<string> {
    const payload = this.nextPayload(events, overrides);
    const jws = await signBundle(payload, this.key);
    this.seq = payload.seq;
    this.last = digestOf(jws);
    this.bundleIds.push(payload.bundle_id);
    return jws;
  }
}

/** Uploads a bundle's text with the customer's key. */
export const uploadAsCustomer = (t: TestApp, apiKey: string, bundle: string) =>
  request(t.app).post('/api/usage/bundles').set('X-API-Key', apiKey).send({ bundle });

/** Uploads a bundle's text for a customer, as an admin. */
export const uploadAsAdmin = (t: TestApp, customerId: string, bundle: string) =>
  request(t.app).post(`/api/customers/${customerId}/usage-bundles`).set('Authorization', `Bearer ${t.adminToken}`).send({ bundle });
