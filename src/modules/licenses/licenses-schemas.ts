import { z } from 'zod';
import { iso, text } from '../../http/common-schemas';
import { parseDuration } from '../../lib/duration';
import type { Activation } from './activations-repository';

/** An instance's fingerprint: its own stable id, 8-128 characters of [A-Za-z0-9._:-]. */
export const fingerprint = z.string().regex(/^[A-Za-z0-9._:-]{8,128}$/, 'must be 8-128 characters of A-Z a-z 0-9 . _ : -');

/** An admin's TTL for an offline license: 1h up to 3650d. */
export const OFFLINE_TTL_MAX_DAYS = 3650;
const offlineTtl = z.string().transform((v, ctx) => {
  const s = parseDuration(v);
  if (s === null || s < 3600 || s > OFFLINE_TTL_MAX_DAYS * 86_400) {
    ctx.addIssue({ code: 'custom', message: `must look like 365d, 12h or 90m, between 1h and ${OFFLINE_TTL_MAX_DAYS}d` });
    return z.NEVER;
  }
  return s;
});

/**
 * An instance's Ed25519 public key, as a JWK: kty OKP, crv Ed25519 and x (32 bytes, base64url); kid,
 * alg and use may come along and are ignored. A private key ("d") is refused: it must never leave the instance.
 */
export const instanceKey = z
  .looseObject({
    kty: z.literal('OKP', 'must be "OKP"'),
    crv: z.literal('Ed25519', 'must be "Ed25519"'),
    x: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'must be 32 bytes, base64url without padding'),
  })
  .refine((k) => !('d' in k), { message: 'is a private key ("d"): give only the public key', path: ['d'] })
  .transform((k) => ({ kty: 'OKP' as const, crv: 'Ed25519' as const, x: k.x }))
  .describe('The instance’s Ed25519 public key (JWK: kty, crv, x); its usage bundles are signed with the private key it keeps');

const instance = {
  fingerprint,
  name: text(200).optional(),
  hostname: text(253).optional(),
  instance_key: instanceKey.optional(),
};

export const licenseQuery = z.strictObject({
  fingerprint: fingerprint.optional().describe('An activated instance’s fingerprint: binds the license to it and counts as its heartbeat'),
});
export const activationBody = z.strictObject(instance);
export const offlineLicenseBody = z.strictObject({
  ...instance,
  ttl: offlineTtl.default(365 * 86_400).describe('How long the license is valid, e.g. 365d (1h-3650d); default 365d'),
});
export const activationParams = z.object({ fingerprint });

const nd = z.number().int();
const ts = z.iso.datetime({ offset: true });

/** One metered limit as of issue (entitlement-rules.ts, meteredStatus): what the instance applies offline. */
const meteredClaim = z.strictObject({
  allowance: z.number().int().describe('The allowance for the period (the effective limit of that name)'),
  used: z.string().describe('The period’s usage when the license was issued (a decimal string)'),
  percent: z.number().nullable().describe('used / allowance in percent, two decimals, rounded down; null when the allowance is 0'),
  thresholds: z.array(z.number().int()).describe('The percentages of the allowance at which the customer is told'),
  thresholds_crossed: z.array(z.number().int()).describe('Those reached by `used`'),
  overage: z
    .union([z.enum(['block', 'allow']), z.number()])
    .describe('Past the allowance: `block` (stop at 100%), `allow` (never stop), or a tolerance (a multiple, 1.1-3: stop there)'),
  blocks_at: z.string().nullable().describe('The quantity at which the policy stops the metered action (allowance × tolerance); null for `allow`'),
  state: z
    .enum(['ok', 'warn', 'over_tolerated', 'blocked'])
    .describe('`ok`; `warn`: a threshold crossed; `over_tolerated`: over the allowance, the policy allows more; `blocked`: the policy allows nothing more'),
});

/**
 * The payload of every license the service signs, described once: the service's `LicenseClaims` type
 * is inferred from it, the OpenAPI document publishes it as the `LicenseClaims` component, and the
 * client SDK's type is read from the types generated from that document (docs/LICENSE-VERIFICATION.md
 * explains each field). NumericDate fields are seconds.
 */
export const licenseClaims = z
  .strictObject({
    iss: z.string(),
    sub: z.string().describe('The customer id'),
    jti: z.string(),
    iat: nd,
    nbf: nd,
    exp: nd,
    plan: z.strictObject({ code: z.string(), name: z.string() }),
    entitlements: z.strictObject({
      features: z.array(z.string()),
      limits: z.record(z.string(), z.number().nullable()).describe('null: unlimited; `instances` is the activation limit the service enforces'),
    }),
    usage: z.strictObject({ period_start: nd, period_end: nd, quantities: z.record(z.string(), z.string()) }).nullable(),
    metered: z
      .record(z.string(), meteredClaim)
      .describe(
        'Per metered limit (a limit named after a usage metric with a number: an allowance for the period), its figures and state as of issue; {} when none',
      ),
    status: z.enum(['active', 'trialing', 'grace', 'expired']),
    subscription: z.strictObject({ id: z.string(), status: z.string(), current_period_end: nd.nullable(), cancel_at_period_end: z.boolean() }).nullable(),
    valid_until: nd.nullable(),
    grace_until: nd.nullable(),
    instance: z.string().optional().describe('The instance fingerprint, only when the license is bound to an activated instance'),
  })
  .meta({ id: 'LicenseClaims' });

export type LicenseClaims = z.output<typeof licenseClaims>;

/** GET /api/customers/:id/license: the claims a license issued now would carry (no id, no instance), and its instances. */
export const licensePreviewResponse = z
  .strictObject({
    claims: licenseClaims.omit({ jti: true, instance: true }),
    instances: z.strictObject({
      limit: z.number().int().nullable().describe('The instance limit (null: none)'),
      held: z.number().int().describe('Seats held now: live activations, and released ones whose bound license has not expired'),
    }),
  })
  .meta({ id: 'LicensePreview' });

export const licenseResponse = z.strictObject({ license: z.string(), claims: licenseClaims, jwks_url: z.string() });

const activation = z.strictObject({
  id: z.string(),
  customer_id: z.string(),
  fingerprint: z.string(),
  name: z.string().nullable(),
  hostname: z.string().nullable(),
  created_at: ts,
  last_seen_at: ts,
  expires_at: ts.nullable(),
  released_at: ts.nullable(),
  release_reason: z.enum(['customer', 'admin', 'stale']).nullable(),
  seat_held_until: ts.nullable().describe('The exp of the last license bound to it: its seat stays taken until then, released or not'),
  instance_key_thumbprint: z
    .string()
    .nullable()
    .describe('The RFC 7638 thumbprint of the instance’s public key (the kid of its usage bundles); null when it gave none'),
});

export const activationResponse = z.strictObject({ activation });

/** What the instance's usage bundles say (docs/USAGE.md, Air-gapped sites), as the activations list shows it. */
const activationBundles = z
  .strictObject({
    last_seq: nd.describe('The highest seq received from this instance (customer and fingerprint)'),
    last_upload_at: ts,
    missing_seq: z.array(nd).describe('Seqs below last_seq never received (at most 1,000 listed)'),
  })
  .nullable()
  .describe('Its usage bundles; null when it has sent none');
export const activationsResponse = z.strictObject({ data: z.array(activation.extend({ bundles: activationBundles })) });

/** An instance's usage bundles, as the usage-bundles module sums them up (per fingerprint). */
export interface ActivationBundles {
  lastSeq: number;
  lastUploadAt: Date;
  missingSeq: number[];
}

export const activationBundlesJson = (b: ActivationBundles | undefined) =>
  b ? { last_seq: b.lastSeq, last_upload_at: iso(b.lastUploadAt), missing_seq: b.missingSeq } : null;

export const jwksResponse = z.strictObject({
  keys: z.array(
    z.strictObject({ kty: z.literal('OKP'), crv: z.literal('Ed25519'), x: z.string(), kid: z.string(), alg: z.literal('EdDSA'), use: z.literal('sig') }),
  ),
});

export const keySetResponse = z.strictObject({
  key_set: z.string().describe('Compact JWS: header {alg: EdDSA, kid: <root kid>, typ: license-keys+jwt}, payload {iss, iat, exp, keys: [public JWKs]}'),
});

export const activationJson = (a: Activation) => ({
  id: a.id,
  customer_id: a.customerId,
  fingerprint: a.fingerprint,
  name: a.name,
  hostname: a.hostname,
  created_at: iso(a.createdAt),
  last_seen_at: iso(a.lastSeenAt),
  expires_at: iso(a.expiresAt),
  released_at: iso(a.releasedAt),
  release_reason: a.releaseReason,
  seat_held_until: iso(a.seatHeldUntil),
  instance_key_thumbprint: a.instanceKeyThumbprint,
});
