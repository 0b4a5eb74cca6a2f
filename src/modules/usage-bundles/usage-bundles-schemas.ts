import { z } from 'zod';
import { licenseClaims } from '../licenses/licenses-schemas';

/** The upload: the bundle file's text, as exported (a trailing newline is fine). */
export const bundleUploadBody = z.strictObject({
  bundle: z
    .string('must be the bundle file’s text')
    .min(1, 'must not be empty')
    .describe('The usage bundle file’s text: a compact JWS signed by the instance key (docs/USAGE.md, Air-gapped sites)'),
});

const nd = z.number().int();

/**
 * The payload of a usage bundle's receipt, signed with the license key (typ usage-receipt+jwt). Every
 * event of the bundle is in exactly one of applied, duplicates and rejected: the receipt
 * acknowledges all of them. Published as the `UsageBundleReceipt` component.
 */
export const usageBundleReceipt = z
  .strictObject({
    iss: z.string(),
    sub: z.string().describe('The customer id'),
    iat: nd,
    jti: z.string(),
    bundle_id: z.string(),
    seq: nd,
    customer_id: z.string(),
    fingerprint: z.string(),
    bundle_digest: z.string().describe('base64url(SHA-256(the bundle’s JWS text)): the bundle this receipt is for'),
    events: nd.describe('Events in the bundle'),
    applied: nd.describe('Events stored by this bundle'),
    duplicates: nd.describe('Events stored already (sent online, or in another bundle) with the same body: nothing new stored'),
    rejected: z
      .array(z.strictObject({ idempotency_key: z.string(), reason: z.string() }))
      .describe('Events refused, with why (a bad metric, quantity or time; a key stored with another body): never stored'),
    late: nd.describe('Of the applied, those late usage (of a billing period already invoiced, or more than 34 days old): billed by a true-up'),
    missing_seq: z.array(nd).describe('Seqs below the highest received from this instance never received (at most 1,000 listed)'),
    previous_mismatch: z.boolean().describe('The bundle of seq - 1 held here has another digest than this bundle’s `previous`'),
  })
  .meta({ id: 'UsageBundleReceipt' });

export type UsageBundleReceipt = z.output<typeof usageBundleReceipt>;

export const bundleUploadResponse = z.strictObject({
  receipt: z.string().describe('Compact JWS, header {alg: EdDSA, kid, typ: usage-receipt+jwt}, signed with the license key; the same for the same bundle'),
  receipt_claims: usageBundleReceipt,
  license: z.string().nullable().describe('A fresh license bound to the instance’s fingerprint (as an offline activation’s), or null: see license_error'),
  claims: licenseClaims.nullable(),
  jwks_url: z.string(),
  license_error: z
    .strictObject({ code: z.string(), message: z.string() })
    .nullable()
    .describe('Why no license came with the receipt (LICENSE_NOT_FOUND, INSTANCE_LIMIT_REACHED, ...); null when one did'),
});
