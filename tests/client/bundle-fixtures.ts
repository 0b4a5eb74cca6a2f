import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { SignJWT } from 'jose';
import { bundleDigest, type BundleReceiptClaims, type UsageBundlePayload } from '../../packages/client';
import { claims as licenseClaims, CUSTOMER, ISSUER, sign, type TestKey } from './license-fixtures';

/** Usage bundles read back, and receipts signed the way the service signs them (the license key, typ usage-receipt+jwt). */

export const FP = 'site-vault-0001';
export const nowSec = () => Math.floor(Date.now() / 1000);

export interface ReadBundle {
  text: string;
  header: { alg: string; typ: string; kid: string };
  payload: UsageBundlePayload;
  digest: string;
}

export function readBundle(file: string): ReadBundle {
  const text = fs.readFileSync(file, 'utf8');
  const [h, p] = text.trim().split('.');
  return {
    text,
    header: JSON.parse(Buffer.from(h!, 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(p!, 'base64url').toString('utf8')),
    digest: bundleDigest(text),
  };
}

/** The claims the service would put in the receipt of `bundle`, every event applied unless listed as rejected. */
export function receiptClaims(bundle: ReadBundle, o: Partial<BundleReceiptClaims> = {}): BundleReceiptClaims {
  const rejected = o.rejected ?? [];
  const p = bundle.payload;
  return {
    iss: ISSUER,
    sub: p.customer_id,
    iat: nowSec(),
    jti: randomUUID(),
    bundle_id: p.bundle_id,
    seq: p.seq,
    customer_id: p.customer_id,
    fingerprint: p.fingerprint,
    bundle_digest: bundle.digest,
    events: p.events.length,
    applied: p.events.length - rejected.length,
    duplicates: 0,
    rejected,
    late: 0,
    missing_seq: [],
    previous_mismatch: false,
    ...o,
  };
}

export function signReceipt(key: TestKey, claims: object, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(claims as Record<string, unknown>)
    .setProtectedHeader({ alg: 'EdDSA', kid: key.kid, typ: 'usage-receipt+jwt', ...header })
    .sign(key.privateKey);
}

/** A fresh license as the upload answers it: bound to the instance. */
export function freshLicense(key: TestKey, o: { fingerprint?: string; iat?: number; customer?: string } = {}): Promise<string> {
  const iat = o.iat ?? nowSec();
  return sign(
    key,
    licenseClaims({ sub: o.customer ?? CUSTOMER, iat, nbf: iat, exp: iat + 86400, valid_until: iat + 30 * 86400, instance: o.fingerprint ?? FP }),
  );
}

/** The upload's answer, as a connected machine writes it to carry back. */
export function answerJson(
  receipt: string,
  claims: BundleReceiptClaims,
  license: string | null,
  licenseError: { code: string; message: string } | null = null,
) {
  return JSON.stringify({
    receipt,
    receipt_claims: claims,
    license,
    claims: null,
    jwks_url: 'https://billing.example/.well-known/jwks.json',
    license_error: licenseError,
  });
}
