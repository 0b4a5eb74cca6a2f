// The license verification an instance embeds: nothing here imports the server side.
export { verifyLicense, createLicenseVerifier, MAX_TOKEN_LENGTH } from './license-verifier';
export type { VerifyLicenseOptions, VerifiedLicense, LicenseDecision, LicenseVerifier } from './license-verifier';
export { LicenseError, LICENSE_ERROR_CODES, isLicenseError } from './license-errors';
export type { LicenseErrorCode } from './license-errors';
export { fileLicenseStore, memoryLicenseStore } from './license-store';
export type { LicenseStore, LicenseMark, FileLicenseStore } from './license-store';
export { LicenseCache } from './license-cache';
export type { LicenseCacheOptions } from './license-cache';
export { staticJwks, trustAnchor, KEY_SET_TYP } from './jwks-source';
export type { Jwks, JwksSource, TrustAnchor, TrustAnchorOptions } from './jwks-source';
export type { LicenseClaims, LicenseStatus, MeteredClaim, MeteredState, OveragePolicy } from './license-claims';
// The offline helper's arithmetic (BillingClient's license.allows() and license.usage() use it), for licenses verified without the client.
export { meteredUsage, localSince, allowsMore } from './metered-usage';
export type { MeteredUsage } from './metered-usage';

// The client SDK.
export { BillingClient } from './billing-client';
export type { BillingClientOptions, ClientLicenseOptions, ClientLicense, LicenseMetering, ActivationRequestFile, ReceiptImport } from './billing-client';
export { BillingApiError, BillingNetworkError } from './api-error';
export { QueueFullError, QueueLockedError, InstanceLimitReachedError, UsageReportError } from './client-errors';
export { QueueDiskFullError, UnsafePathError, RedirectRefusedError, OfflineModeError } from './client-errors';
// Usage bundles (air-gapped instances): the instance key, the export, the receipt.
export { InstanceKeyError, INSTANCE_KEY_FILE } from './instance-key';
export type { InstanceKeyJwk } from './instance-key';
export { ReceiptError, RECEIPT_ERROR_CODES, isReceiptError } from './receipt-errors';
export type { ReceiptErrorCode } from './receipt-errors';
export { BundleStateError, BUNDLE_STATE_FILE } from './bundle-state';
export { bundleDigest, BUNDLE_FORMAT, BUNDLE_TYP } from './usage-bundles';
export type { ExportSummary } from './usage-bundles';
export { RECEIPT_TYP } from './receipt-verifier';
export type { UnsafePathReason } from './client-errors';
export type { FlushResult } from './usage-flusher';
export type { DeadLetter } from './usage-queue';
export type { PortalSession, UpcomingInvoice, UsageBundleAnswer, UsageBundlePayload, BundleReceiptClaims, BundleEvent } from './client-types';
export type {
  UsageEvent,
  UsageEventBody,
  UsageReceipt,
  QueuedReceipt,
  UsageTotals,
  Me,
  Subscriptions,
  LicenseAnswer,
  ActivationAnswer,
  Invoice,
  InvoicesPage,
  InvoicesQuery,
} from './client-types';
export type { paths, components, operations } from './api-types';
